// Elementwise arithmetic with numpy broadcasting, and the reduction that undoes a broadcast in backward
// passes.
#pragma once

#include "wick/tensor.h"

namespace wick::ops {

// Both operands share a dtype and device; the result has the broadcast shape.
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor scale(const Tensor& x, double factor);

// Sums x over the axes that broadcasting added or stretched, giving a tensor of `shape`
// (the gradient of a broadcast operand). Accumulates in f32 (f64 for f64).
Tensor sum_to_shape(const Tensor& x, const Shape& shape);

}  // namespace wick::ops
