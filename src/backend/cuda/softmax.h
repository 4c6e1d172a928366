// Internal entry of the CUDA softmax that also returns each row's log-sum-exp (f32 [rows]), for attention.
#pragma once

#include "wick/ops/softmax.h"

namespace wick::cuda {

void softmax_rows(const Tensor& x, const Tensor& y, const ops::SoftmaxMask& mask, bool log, const Tensor& lse,
                  bool allow_row_cache = true);

}  // namespace wick::cuda
