#include "wick/ops/norm.h"

#include "backend/cpu/kernels.h"
#ifdef WICK_WITH_CUDA
#include "backend/cuda/kernels.h"
#endif
#include "ops/check.h"
#include "ops/dispatch.h"
#include "wick/ops/elementwise.h"

namespace wick::ops {
namespace {

struct RmsNormCall {
  const Tensor& x;
  const Tensor& weight;
  double eps;
  const Tensor& y;
};

struct RmsNormResidualCall {
  const Tensor& x;
  const Tensor& residual;
  const Tensor& weight;
  double eps;
  const Tensor& y;
  const Tensor& sum;
};

struct RmsNormBackwardCall {
  const Tensor& x;
  const Tensor& weight;
  const Tensor& dy;
  const Tensor& residual_grad;
  double eps;
  const Tensor& dx;
  const Tensor& dweight;
};

struct LayerNormCall {
  const Tensor& x;
  const Tensor& weight;
  const Tensor& bias;
  double eps;
  const Tensor& y;
};

struct LayerNormBackwardCall {
  const Tensor& x;
  const Tensor& weight;
  const Tensor& dy;
  double eps;
  const Tensor& dx;
  const Tensor& dweight;
  const Tensor& dbias;
};

void check_norm_args(std::string_view op, const Tensor& x, const Tensor& weight, const Tensor& bias,
                     double eps) {
  check_floating(op, "x", x);
  if (x.dim() == 0) fail(op, "x must have rank >= 1, got {}", x.str());
  if (!(eps >= 0)) fail(op, "eps must be >= 0, got {}", eps);
  for (const auto& [name, t] : {NamedTensor{"weight", &weight}, NamedTensor{"bias", &bias}}) {
    if (!t->defined()) continue;
    check_floating(op, name, *t);
    check_shape(op, name, *t, {x.size(-1)});
  }
  check_same_device(op, {{"x", &x}, {"weight", &weight}, {"bias", &bias}});
}

DType accumulate_dtype(const Tensor& x) {
  return x.dtype() == DType::f64 ? DType::f64 : DType::f32;
}

// Where the caller gives an output: x's shape, dtype and device.
void check_output(std::string_view op, const Tensor& x, const Tensor& into) {
  check_shape(op, "into", into, x.shape());
  check_same_dtype(op, {{"x", &x}, {"into", &into}});
  check_same_device(op, {{"x", &x}, {"into", &into}});
}

}  // namespace

Tensor rms_norm(const Tensor& x, const Tensor& weight, double eps) {
  check_defined("rms_norm", "x", x);
  return rms_norm(x, weight, eps, Tensor::empty(x.shape(), x.dtype(), x.device()));
}

Tensor rms_norm(const Tensor& x, const Tensor& weight, double eps, const Tensor& into) {
  constexpr std::string_view op = "rms_norm";
  check_defined(op, "weight", weight);
  check_norm_args(op, x, weight, Tensor(), eps);
  check_defined(op, "into", into);
  check_output(op, x, into);
  const Tensor& y = into;
  static const std::vector<Implementation<RmsNormCall>> table = {
      {"cpu", "cpu tensors",
       [](const RmsNormCall& c) {
         return on_cpu({&c.x, &c.weight});
       },
       [](const RmsNormCall& c) { cpu::rms_norm(c.x, c.weight, c.eps, c.y); }},
#ifdef WICK_WITH_CUDA
      {"cuda_row_cache", "cuda f32/f16/bf16 with dense 16-byte-aligned rows of <= 8192 vectors",
       [](const RmsNormCall& c) {
         return on_cuda({&c.x, &c.weight}) && cuda::rms_norm_row_cache_applies(c.x, c.y);
       },
       [](const RmsNormCall& c) { cuda::rms_norm(c.x, c.weight, c.eps, c.y, true); }},
      {"cuda", "cuda tensors",
       [](const RmsNormCall& c) {
         return on_cuda({&c.x, &c.weight});
       },
       [](const RmsNormCall& c) { cuda::rms_norm(c.x, c.weight, c.eps, c.y, false); }},
#endif
  };
  dispatch(op, table, RmsNormCall{x, weight, eps, y}, describe({{"x", &x}, {"weight", &weight}}));
  return y;
}

RmsNormResidual rms_norm_residual(const Tensor& x, const Tensor& residual, const Tensor& weight, double eps,
                                  const Tensor& y_into) {
  constexpr std::string_view op = "rms_norm_residual";
  check_defined(op, "weight", weight);
  check_norm_args(op, x, weight, Tensor(), eps);
  check_floating(op, "residual", residual);
  check_shape(op, "residual", residual, x.shape());
  check_same_dtype(op, {{"x", &x}, {"residual", &residual}});
  check_same_device(op, {{"x", &x}, {"residual", &residual}});
  if (y_into.defined()) check_output(op, x, y_into);
  RmsNormResidual result{y_into.defined() ? y_into : Tensor::empty(x.shape(), x.dtype(), x.device()),
                         Tensor::empty(x.shape(), x.dtype(), x.device())};
  static const std::vector<Implementation<RmsNormResidualCall>> table = {
#ifdef WICK_WITH_CUDA
      {"cuda_row_cache", "cuda f32/f16/bf16 with dense 16-byte-aligned rows of <= 8192 vectors",
       [](const RmsNormResidualCall& c) {
         return on_cuda({&c.x, &c.residual, &c.weight}) && cuda::rms_norm_row_cache_applies(c.x, c.y);
       },
       [](const RmsNormResidualCall& c) {
         cuda::rms_norm_residual(c.x, c.residual, c.weight, c.eps, c.y, c.sum, true);
       }},
      {"cuda", "cuda tensors",
       [](const RmsNormResidualCall& c) {
         return on_cuda({&c.x, &c.residual, &c.weight});
       },
       [](const RmsNormResidualCall& c) {
         cuda::rms_norm_residual(c.x, c.residual, c.weight, c.eps, c.y, c.sum, false);
       }},
#endif
      {"composed", "nothing (add, then rms_norm, on any device)",
       [](const RmsNormResidualCall&) { return true; },
       [](const RmsNormResidualCall& c) {
         c.sum.copy_(add(c.x, c.residual));
         c.y.copy_(rms_norm(c.sum, c.weight, c.eps));
       }},
  };
  dispatch(op, table, RmsNormResidualCall{x, residual, weight, eps, result.y, result.sum},
           describe({{"x", &x}, {"residual", &residual}, {"weight", &weight}}));
  return result;
}

RmsNormGrads rms_norm_backward(const Tensor& x, const Tensor& weight, const Tensor& dy, double eps,
                               bool weight_grad, const Tensor& residual_grad) {
  constexpr std::string_view op = "rms_norm_backward";
  check_defined(op, "weight", weight);
  check_norm_args(op, x, weight, Tensor(), eps);
  check_floating(op, "dy", dy);
  check_shape(op, "dy", dy, x.shape());
  check_same_device(op, {{"x", &x}, {"dy", &dy}});
  if (residual_grad.defined()) {
    check_floating(op, "residual_grad", residual_grad);
    check_shape(op, "residual_grad", residual_grad, x.shape());
    check_same_device(op, {{"x", &x}, {"residual_grad", &residual_grad}});
  }
  RmsNormGrads grads{Tensor::empty(x.shape(), x.dtype(), x.device()),
                     weight_grad ? Tensor::empty(weight.shape(), accumulate_dtype(x), x.device()) : Tensor()};
  static const std::vector<Implementation<RmsNormBackwardCall>> table = {
      {"cpu", "cpu tensors",
       [](const RmsNormBackwardCall& c) {
         return on_cpu({&c.x, &c.weight, &c.dy, &c.residual_grad});
       },
       [](const RmsNormBackwardCall& c) {
         cpu::rms_norm_backward(c.x, c.weight, c.dy, c.residual_grad, c.eps, c.dx, c.dweight);
       }},
#ifdef WICK_WITH_CUDA
      {"cuda", "cuda tensors",
       [](const RmsNormBackwardCall& c) {
         return on_cuda({&c.x, &c.weight, &c.dy, &c.residual_grad});
       },
       [](const RmsNormBackwardCall& c) {
         cuda::rms_norm_backward(c.x, c.weight, c.dy, c.residual_grad, c.eps, c.dx, c.dweight);
       }},
#endif
  };
  dispatch(op, table, RmsNormBackwardCall{x, weight, dy, residual_grad, eps, grads.dx, grads.dweight},
           describe({{"x", &x}, {"weight", &weight}, {"dy", &dy}}));
  return grads;
}

Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps) {
  constexpr std::string_view op = "layer_norm";
  check_norm_args(op, x, weight, bias, eps);
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  static const std::vector<Implementation<LayerNormCall>> table = {
      {"cpu", "cpu tensors",
       [](const LayerNormCall& c) {
         return on_cpu({&c.x, &c.weight, &c.bias});
       },
       [](const LayerNormCall& c) { cpu::layer_norm(c.x, c.weight, c.bias, c.eps, c.y); }},
#ifdef WICK_WITH_CUDA
      {"cuda", "cuda tensors",
       [](const LayerNormCall& c) {
         return on_cuda({&c.x, &c.weight, &c.bias});
       },
       [](const LayerNormCall& c) { cuda::layer_norm(c.x, c.weight, c.bias, c.eps, c.y); }},
#endif
  };
  dispatch(op, table, LayerNormCall{x, weight, bias, eps, y}, describe({{"x", &x}, {"weight", &weight}}));
  return y;
}

LayerNormGrads layer_norm_backward(const Tensor& x, const Tensor& weight, const Tensor& bias,
                                   const Tensor& dy, double eps) {
  constexpr std::string_view op = "layer_norm_backward";
  check_norm_args(op, x, weight, bias, eps);
  check_floating(op, "dy", dy);
  check_shape(op, "dy", dy, x.shape());
  check_same_device(op, {{"x", &x}, {"dy", &dy}});
  LayerNormGrads grads;
  grads.dx = Tensor::empty(x.shape(), x.dtype(), x.device());
  if (weight.defined()) grads.dweight = Tensor::empty(weight.shape(), accumulate_dtype(x), x.device());
  if (bias.defined()) grads.dbias = Tensor::empty(bias.shape(), accumulate_dtype(x), x.device());
  static const std::vector<Implementation<LayerNormBackwardCall>> table = {
      {"cpu", "cpu tensors",
       [](const LayerNormBackwardCall& c) {
         return on_cpu({&c.x, &c.weight, &c.dy});
       },
       [](const LayerNormBackwardCall& c) {
         cpu::layer_norm_backward(c.x, c.weight, c.dy, c.eps, c.dx, c.dweight, c.dbias);
       }},
#ifdef WICK_WITH_CUDA
      {"cuda", "cuda tensors",
       [](const LayerNormBackwardCall& c) {
         return on_cuda({&c.x, &c.weight, &c.dy});
       },
       [](const LayerNormBackwardCall& c) {
         cuda::layer_norm_backward(c.x, c.weight, c.dy, c.eps, c.dx, c.dweight, c.dbias);
       }},
#endif
  };
  dispatch(op, table, LayerNormBackwardCall{x, weight, dy, eps, grads.dx, grads.dweight, grads.dbias},
           describe({{"x", &x}, {"weight", &weight}, {"dy", &dy}}));
  return grads;
}

}  // namespace wick::ops
