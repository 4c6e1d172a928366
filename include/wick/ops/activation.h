// Activation functions and the SwiGLU gate, with backward passes.
#pragma once

#include "wick/tensor.h"

namespace wick::ops {

enum class GeluApproximation { none, tanh };

Tensor silu(const Tensor& x);
Tensor silu_backward(const Tensor& x, const Tensor& dy);
Tensor gelu(const Tensor& x, GeluApproximation approximation = GeluApproximation::none);
Tensor gelu_backward(const Tensor& x, const Tensor& dy,
                     GeluApproximation approximation = GeluApproximation::none);

// swiglu(gate, up) = silu(gate) · up, elementwise; gate and up share shape and dtype.
Tensor swiglu(const Tensor& gate, const Tensor& up);
struct SwigluGrads {
  Tensor dgate;
  Tensor dup;
};
SwigluGrads swiglu_backward(const Tensor& gate, const Tensor& up, const Tensor& dy);
// The same, written into `into` (views of one buffer, say, so that the two halves form one matrix).
SwigluGrads swiglu_backward(const Tensor& gate, const Tensor& up, const Tensor& dy, const SwigluGrads& into);

}  // namespace wick::ops
