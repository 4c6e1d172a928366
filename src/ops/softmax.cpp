#include "wick/ops/softmax.h"

#include "backend/cpu/kernels.h"
#ifdef WICK_WITH_CUDA
#include "backend/cuda/kernels.h"
#endif
#include "ops/check.h"
#include "ops/dispatch.h"

namespace wick::ops {
namespace {

struct SoftmaxCall {
  const Tensor& x;
  const Tensor& y;
  int64_t axis;
  const SoftmaxMask& mask;
  bool log;
};

struct SoftmaxBackwardCall {
  const Tensor& y;
  const Tensor& dy;
  const Tensor& dx;
  int64_t axis;
  bool log;
};

Tensor run_softmax(std::string_view op, const Tensor& x, int64_t axis, const SoftmaxMask& mask, bool log) {
  check_floating(op, "x", x);
  axis = normalize_axis(op, axis, std::max<int64_t>(x.dim(), 1));
  if (x.dim() == 0) fail(op, "needs a tensor of rank >= 1, got {}", x.str());
  if (mask.causal || mask.lengths.defined()) {
    if (axis != x.dim() - 1) fail(op, "masks apply to the last axis only, got axis {} of {}", axis, x.str());
    if (mask.causal && x.dim() < 2) fail(op, "a causal mask needs rows and columns, got {}", x.str());
    if (mask.lengths.defined() && x.dim() < 2)
      fail(op, "a length mask needs a batch axis and columns, got {}", x.str());
  }
  if (mask.lengths.defined()) {
    check_index_dtype(op, "mask.lengths", mask.lengths);
    check_shape(op, "mask.lengths", mask.lengths, {x.size(0)});
    check_same_device(op, {{"x", &x}, {"mask.lengths", &mask.lengths}});
  }
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  static const std::vector<Implementation<SoftmaxCall>> table = {
      {"cpu", "cpu tensors",
       [](const SoftmaxCall& c) {
         return on_cpu({&c.x, &c.mask.lengths});
       },
       [](const SoftmaxCall& c) { cpu::softmax(c.x, c.y, c.axis, c.mask, c.log); }},
#ifdef WICK_WITH_CUDA
      {"cuda_row_cache", "cuda f32/f16/bf16, last axis, dense 16-byte-aligned rows of <= 16 values a thread",
       [](const SoftmaxCall& c) {
         return on_cuda({&c.x, &c.mask.lengths}) && c.axis == c.x.dim() - 1 &&
                cuda::softmax_applies(cuda::SoftmaxKernel::row_cache, c.x, c.mask);
       },
       [](const SoftmaxCall& c) { cuda::softmax(c.x, c.y, c.mask, c.log, cuda::SoftmaxKernel::row_cache); }},
      {"cuda_vector", "cuda f32/f16/bf16, last axis, no mask, dense 16-byte-aligned rows of whole vectors",
       [](const SoftmaxCall& c) {
         return on_cuda({&c.x}) && c.axis == c.x.dim() - 1 &&
                cuda::softmax_applies(cuda::SoftmaxKernel::vector, c.x, c.mask);
       },
       [](const SoftmaxCall& c) { cuda::softmax(c.x, c.y, c.mask, c.log, cuda::SoftmaxKernel::vector); }},
      {"cuda", "cuda tensors",
       [](const SoftmaxCall& c) {
         return on_cuda({&c.x, &c.mask.lengths});
       },
       [](const SoftmaxCall& c) {  // the kernel works on the last axis: move the op's axis there
         const int64_t last = c.x.dim() - 1;
         cuda::softmax(c.x.transpose(c.axis, last), c.y.transpose(c.axis, last), c.mask, c.log,
                       cuda::SoftmaxKernel::plain);
       }},
#endif
  };
  dispatch(op, table, SoftmaxCall{x, y, axis, mask, log}, x.str());
  return y;
}

Tensor run_backward(std::string_view op, const Tensor& y, const Tensor& dy, int64_t axis, bool log) {
  check_floating(op, "y", y);
  check_floating(op, "dy", dy);
  check_same_dtype(op, {{"y", &y}, {"dy", &dy}});
  check_same_device(op, {{"y", &y}, {"dy", &dy}});
  check_shape(op, "dy", dy, y.shape());
  if (y.dim() == 0) fail(op, "needs a tensor of rank >= 1, got {}", y.str());
  axis = normalize_axis(op, axis, y.dim());
  Tensor dx = Tensor::empty(y.shape(), y.dtype(), y.device());
  static const std::vector<Implementation<SoftmaxBackwardCall>> table = {
      {"cpu", "cpu tensors",
       [](const SoftmaxBackwardCall& c) {
         return on_cpu({&c.y, &c.dy});
       },
       [](const SoftmaxBackwardCall& c) { cpu::softmax_backward(c.y, c.dy, c.dx, c.axis, c.log); }},
#ifdef WICK_WITH_CUDA
      {"cuda", "cuda tensors",
       [](const SoftmaxBackwardCall& c) {
         return on_cuda({&c.y, &c.dy});
       },
       [](const SoftmaxBackwardCall& c) {
         const int64_t last = c.y.dim() - 1;
         cuda::softmax_backward(c.y.transpose(c.axis, last), c.dy.transpose(c.axis, last),
                                c.dx.transpose(c.axis, last), c.log);
       }},
#endif
  };
  dispatch(op, table, SoftmaxBackwardCall{y, dy, dx, axis, log}, describe({{"y", &y}, {"dy", &dy}}));
  return dx;
}

}  // namespace

Tensor softmax(const Tensor& x, int64_t axis, const SoftmaxMask& mask) {
  return run_softmax("softmax", x, axis, mask, false);
}

Tensor log_softmax(const Tensor& x, int64_t axis) {
  return run_softmax("log_softmax", x, axis, {}, true);
}

Tensor softmax_backward(const Tensor& y, const Tensor& dy, int64_t axis) {
  return run_backward("softmax_backward", y, dy, axis, false);
}

Tensor log_softmax_backward(const Tensor& y, const Tensor& dy, int64_t axis) {
  return run_backward("log_softmax_backward", y, dy, axis, true);
}

}  // namespace wick::ops
