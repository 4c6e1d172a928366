// Index selection over the last axis: argmax and top-k.
#pragma once

#include "wick/tensor.h"

namespace wick::ops {

// Index of the largest element of each last-axis row (the first one on ties); i64 [..., ].
Tensor argmax(const Tensor& x);

struct TopK {
  Tensor values;   // [..., k], x's dtype, descending
  Tensor indices;  // [..., k], i64
};
// The k largest elements of each last-axis row, in descending order (lower index first on ties).
TopK topk(const Tensor& x, int64_t k);

}  // namespace wick::ops
