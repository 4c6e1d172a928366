// The activation functions of the elementwise kernels and their derivatives, in the compute type A, shared
// by every kernel that applies them so that each forms the same bits.
#pragma once

#include "backend/cuda/kernels.h"

namespace wick::cuda {

template <typename A>
__device__ __forceinline__ A sigmoid(A x) {
  return A(1) / (A(1) + exp(-x));
}

template <typename A>
__device__ __forceinline__ A activation(Unary kind, A x) {
  constexpr A k = A(0.7978845608028654);  // sqrt(2/pi)
  switch (kind) {
    case Unary::silu:
      return x * sigmoid(x);
    case Unary::gelu_erf:
      return A(0.5) * x * (A(1) + erf(x * A(0.7071067811865476)));
    case Unary::gelu_tanh:
      return A(0.5) * x * (A(1) + tanh(k * (x + A(0.044715) * x * x * x)));
  }
  return x;
}

template <typename A>
__device__ __forceinline__ A activation_derivative(Unary kind, A x) {
  constexpr A k = A(0.7978845608028654);
  switch (kind) {
    case Unary::silu: {
      const A s = sigmoid(x);
      return s * (A(1) + x * (A(1) - s));
    }
    case Unary::gelu_erf:
      return A(0.5) * (A(1) + erf(x * A(0.7071067811865476))) +
             x * exp(A(-0.5) * x * x) * A(0.3989422804014327);
    case Unary::gelu_tanh: {
      const A t = tanh(k * (x + A(0.044715) * x * x * x));
      return A(0.5) * (A(1) + t) + A(0.5) * x * (A(1) - t * t) * k * (A(1) + A(3 * 0.044715) * x * x);
    }
  }
  return A(1);
}

}  // namespace wick::cuda
