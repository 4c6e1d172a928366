#include "wick/ops/optim.h"

#include <cmath>

#include "backend/cpu/kernels.h"
#ifdef WICK_WITH_CUDA
#include "backend/cuda/kernels.h"
#endif
#include "ops/check.h"
#include "ops/dispatch.h"

namespace wick::ops {
namespace {

struct AdamWCall {
  const Tensor& param;
  const Tensor& grad;
  const Tensor& m;
  const Tensor& v;
  const AdamWOptions& options;
};

struct UnaryCall {
  const Tensor& x;
  const Tensor& out;
  double p;
  uint64_t seed, draw;
};

}  // namespace

void adamw_step(const Tensor& param, const Tensor& grad, const Tensor& m, const Tensor& v,
                const AdamWOptions& options) {
  constexpr std::string_view op = "adamw_step";
  for (const auto& [name, t] : {NamedTensor{"param", &param}, NamedTensor{"grad", &grad},
                                NamedTensor{"m", &m}, NamedTensor{"v", &v}}) {
    check_floating(op, name, *t);
    if (t->dtype() != DType::f32 && t->dtype() != DType::f64)
      fail(op, "argument '{}' must be f32 or f64 (optimizer state is kept in full precision), got {}", name,
           t->str());
    if (!t->is_contiguous()) fail(op, "argument '{}' must be dense, got {}", name, t->str());
    check_shape(op, name, *t, param.shape());
  }
  check_same_dtype(op, {{"param", &param}, {"grad", &grad}, {"m", &m}, {"v", &v}});
  check_same_device(op, {{"param", &param}, {"grad", &grad}, {"m", &m}, {"v", &v}});
  const AdamWOptions& o = options;
  if (!(o.lr >= 0) || !std::isfinite(o.lr)) fail(op, "lr must be finite and >= 0, got {}", o.lr);
  if (!(o.beta1 >= 0 && o.beta1 < 1)) fail(op, "beta1 must be in [0, 1), got {}", o.beta1);
  if (!(o.beta2 >= 0 && o.beta2 < 1)) fail(op, "beta2 must be in [0, 1), got {}", o.beta2);
  if (!(o.eps > 0)) fail(op, "eps must be > 0, got {}", o.eps);
  if (!(o.weight_decay >= 0)) fail(op, "weight_decay must be >= 0, got {}", o.weight_decay);
  if (o.step < 1) fail(op, "step must be >= 1 (the first update is step 1), got {}", o.step);
  if (!std::isfinite(o.grad_scale)) fail(op, "grad_scale must be finite, got {}", o.grad_scale);
  static const std::vector<Implementation<AdamWCall>> table = {
      {"cpu", "cpu tensors", [](const AdamWCall& c) { return on_cpu({&c.param}); },
       [](const AdamWCall& c) { cpu::adamw_step(c.param, c.grad, c.m, c.v, c.options); }},
#ifdef WICK_WITH_CUDA
      {"cuda", "cuda tensors", [](const AdamWCall& c) { return on_cuda({&c.param}); },
       [](const AdamWCall& c) { cuda::adamw_step(c.param, c.grad, c.m, c.v, c.options); }},
#endif
  };
  dispatch(op, table, AdamWCall{param, grad, m, v, options}, describe({{"param", &param}}));
}

Tensor sum_of_squares(const Tensor& x) {
  constexpr std::string_view op = "sum_of_squares";
  check_floating(op, "x", x);
  Tensor out = Tensor::empty({}, DType::f64, x.device());
  static const std::vector<Implementation<UnaryCall>> table = {
      {"cpu", "cpu tensors", [](const UnaryCall& c) { return on_cpu({&c.x}); },
       [](const UnaryCall& c) { cpu::sum_of_squares(c.x, c.out); }},
#ifdef WICK_WITH_CUDA
      {"cuda", "cuda tensors", [](const UnaryCall& c) { return on_cuda({&c.x}); },
       [](const UnaryCall& c) { cuda::sum_of_squares(c.x, c.out); }},
#endif
  };
  dispatch(op, table, UnaryCall{x, out, 0, 0, 0}, describe({{"x", &x}}));
  return out;
}

Tensor dropout(const Tensor& x, double p, uint64_t seed, uint64_t draw) {
  constexpr std::string_view op = "dropout";
  check_floating(op, "x", x);
  if (!(p >= 0 && p < 1)) fail(op, "p must be in [0, 1), got {}", p);
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  static const std::vector<Implementation<UnaryCall>> table = {
      {"cpu", "cpu tensors", [](const UnaryCall& c) { return on_cpu({&c.x}); },
       [](const UnaryCall& c) { cpu::dropout(c.x, c.p, c.seed, c.draw, c.out); }},
#ifdef WICK_WITH_CUDA
      {"cuda", "cuda tensors", [](const UnaryCall& c) { return on_cuda({&c.x}); },
       [](const UnaryCall& c) { cuda::dropout(c.x, c.p, c.seed, c.draw, c.out); }},
#endif
  };
  dispatch(op, table, UnaryCall{x, out, p, seed, draw}, describe({{"x", &x}}));
  return out;
}

}  // namespace wick::ops
