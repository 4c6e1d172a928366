// RMSNorm (Llama/Qwen) and LayerNorm (BERT) over the last axis, with their backward passes.
#pragma once

#include "wick/tensor.h"

namespace wick::ops {

// y = x / sqrt(mean(x²) + eps) · weight; weight: [x.size(-1)].
Tensor rms_norm(const Tensor& x, const Tensor& weight, double eps);
// The same, written into `into` (x's shape and dtype: the left columns of a wider matrix, say), which it
// returns.
Tensor rms_norm(const Tensor& x, const Tensor& weight, double eps, const Tensor& into);

// The pre-norm block step in one pass: sum = x + residual; y = rms_norm(sum). Returns both; y is written into
// y_into where that is given.
struct RmsNormResidual {
  Tensor y;
  Tensor sum;
};
RmsNormResidual rms_norm_residual(const Tensor& x, const Tensor& residual, const Tensor& weight, double eps,
                                  const Tensor& y_into = Tensor());

struct RmsNormGrads {
  Tensor dx;
  Tensor dweight;  // f32 (f64 for f64 inputs)
};
// weight_grad = false (a frozen weight) leaves dweight undefined and skips its reduction. A defined
// residual_grad (x's shape) is added to dx in the same pass: the gradient of a pre-norm block's input, which
// reaches it through both the norm and the residual branch, rounded once.
RmsNormGrads rms_norm_backward(const Tensor& x, const Tensor& weight, const Tensor& dy, double eps,
                               bool weight_grad = true, const Tensor& residual_grad = Tensor());

// y = (x − mean) / sqrt(var + eps) · weight + bias; weight and bias are optional (undefined tensors).
Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps);

struct LayerNormGrads {
  Tensor dx;
  Tensor dweight;  // undefined when weight is
  Tensor dbias;    // undefined when bias is
};
LayerNormGrads layer_norm_backward(const Tensor& x, const Tensor& weight, const Tensor& bias,
                                   const Tensor& dy, double eps);

}  // namespace wick::ops
