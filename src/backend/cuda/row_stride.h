// A tensor seen as a matrix of rows: what the row-wise kernels need to read a column block of a wider
// matrix in place.
#pragma once

#include "wick/tensor.h"

namespace wick::cuda {

// The row stride of t seen as [rows, t.size(-1)] with a unit last stride (leading axes collapsing into one
// row axis), or -1.
inline int64_t row_stride(const Tensor& t) {
  if (t.dim() == 0 || t.stride(-1) != 1) return -1;
  if (t.dim() == 1) return t.size(0);
  for (int64_t axis = 0; axis + 2 < t.dim(); ++axis)
    if (t.size(axis) > 1 && t.stride(axis) != t.size(axis + 1) * t.stride(axis + 1)) return -1;
  return t.stride(-2);
}

}  // namespace wick::cuda
