// Element copy with dtype conversion between two tensors on one device, and fill. Tensor::copy_ and friends
// stand on these; they are dispatched like every other op.
#pragma once

#include "wick/tensor.h"

namespace wick::ops {

// dst and src have equal shapes and live on the same device; any strides, any dtypes.
void copy_same_device(const Tensor& dst, const Tensor& src);
void fill(const Tensor& dst, double value);

}  // namespace wick::ops
