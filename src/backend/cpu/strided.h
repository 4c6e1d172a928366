// Row-by-row walks over strided tensors: the innermost axis is a plain loop, the outer axes an odometer.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "wick/tensor.h"

namespace wick::cpu {

// Calls body(offsets, inner) for rows [row_begin, row_end) of `shape`, where a row is one run of the last
// axis, offsets[k] is operand k's element offset at the row start and inner = shape.back(). A rank-0 shape is
// one row of one element.
template <size_t N, typename Body>
void for_each_row(const Shape& shape, const std::array<const Shape*, N>& strides, int64_t row_begin,
                  int64_t row_end, Body&& body) {
  if (row_begin >= row_end) return;  // also keeps empty axes out of the index arithmetic below
  const int64_t rank = static_cast<int64_t>(shape.size());
  if (rank == 0) {
    std::array<int64_t, N> offsets{};
    body(offsets, int64_t{1});
    return;
  }
  const int64_t inner = shape.back();
  std::vector<int64_t> index(static_cast<size_t>(rank), 0);
  std::array<int64_t, N> offsets{};
  int64_t rest = row_begin;
  for (int64_t axis = rank - 2; axis >= 0; --axis) {
    index[axis] = rest % shape[axis];
    rest /= shape[axis];
    for (size_t k = 0; k < N; ++k) offsets[k] += index[axis] * (*strides[k])[axis];
  }
  for (int64_t row = row_begin; row < row_end; ++row) {
    body(offsets, inner);
    for (int64_t axis = rank - 2; axis >= 0; --axis) {
      if (++index[axis] < shape[axis]) {
        for (size_t k = 0; k < N; ++k) offsets[k] += (*strides[k])[axis];
        break;
      }
      for (size_t k = 0; k < N; ++k) offsets[k] -= (shape[axis] - 1) * (*strides[k])[axis];
      index[axis] = 0;
    }
  }
}

inline int64_t row_count(const Shape& shape) {
  return shape.empty() || shape.back() == 0 ? (shape.empty() ? 1 : 0) : shape_numel(shape) / shape.back();
}

}  // namespace wick::cpu
