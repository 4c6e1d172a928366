// Internal entry of the CUDA softmax that also returns each row's log-sum-exp (f32 [rows]), for attention.
#pragma once

#include "wick/ops/softmax.h"

namespace wick::cuda {

// Uses the fastest kernel that applies.
void softmax_rows(const Tensor& x, const Tensor& y, const ops::SoftmaxMask& mask, bool log,
                  const Tensor& lse);

}  // namespace wick::cuda
