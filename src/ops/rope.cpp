#include "wick/ops/rope.h"

#include "backend/cpu/kernels.h"
#ifdef WICK_WITH_CUDA
#include "backend/cuda/kernels.h"
#endif
#include "ops/check.h"
#include "ops/dispatch.h"

namespace wick::ops {
namespace {

struct RopeCall {
  const Tensor& x;
  const RopeOptions& options;
  bool inverse;
  const Tensor& y;
};

Tensor run_rope(std::string_view op, const Tensor& x, const RopeOptions& options, bool inverse,
                const Tensor& into = Tensor()) {
  check_floating(op, "x", x);
  check_rank(op, "x", x, 4);
  const int64_t head_dim = x.size(3);
  const int64_t rotary = options.rotary_dims == 0 ? head_dim : options.rotary_dims;
  if (rotary <= 0 || rotary > head_dim || rotary % 2 != 0)
    fail(op, "rotary_dims must be even and in (0, head_dim={}], got {}", head_dim, options.rotary_dims);
  if (!(options.theta > 0)) fail(op, "theta must be > 0, got {}", options.theta);
  if (options.positions.defined()) {
    const Tensor& p = options.positions;
    check_index_dtype(op, "positions", p);
    check_same_device(op, {{"x", &x}, {"positions", &p}});
    const bool per_sequence = p.dim() == 1 && p.size(0) == x.size(1);
    const bool per_batch = p.dim() == 2 && p.size(0) == x.size(0) && p.size(1) == x.size(1);
    if (!per_sequence && !per_batch)
      fail(op, "positions must have shape [{}] or [{}, {}] for x={}, got {}", x.size(1), x.size(0), x.size(1),
           x.str(), p.str());
  }
  if (into.defined()) {
    check_shape(op, "into", into, x.shape());
    check_same_dtype(op, {{"x", &x}, {"into", &into}});
    check_same_device(op, {{"x", &x}, {"into", &into}});
  }
  const Tensor y = into.defined() ? into : Tensor::empty(x.shape(), x.dtype(), x.device());
  static const std::vector<Implementation<RopeCall>> table = {
      {"cpu", "cpu tensors",
       [](const RopeCall& c) {
         return on_cpu({&c.x, &c.options.positions});
       },
       [](const RopeCall& c) { cpu::rope(c.x, c.options, c.inverse, c.y); }},
#ifdef WICK_WITH_CUDA
      {"cuda", "cuda tensors",
       [](const RopeCall& c) {
         return on_cuda({&c.x, &c.options.positions});
       },
       [](const RopeCall& c) { cuda::rope(c.x, c.options, c.inverse, c.y); }},
#endif
  };
  dispatch(op, table, RopeCall{x, options, inverse, y}, x.str());
  return y;
}

}  // namespace

Tensor rope(const Tensor& x, const RopeOptions& options) {
  return run_rope("rope", x, options, false);
}
Tensor rope_backward(const Tensor& dy, const RopeOptions& options) {
  return run_rope("rope_backward", dy, options, true);
}
Tensor rope_backward(const Tensor& dy, const RopeOptions& options, const Tensor& into) {
  check_defined("rope_backward", "into", into);
  return run_rope("rope_backward", dy, options, true, into);
}

}  // namespace wick::ops
