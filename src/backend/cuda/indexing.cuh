// Element offsets for strided kernels. The host first merges axes that every operand walks contiguously (a
// dense tensor becomes one axis), and kernels decompose the linear index with 32-bit arithmetic when the
// tensor is small enough: 64-bit division costs dozens of instructions on the GPU.
#pragma once

#include <cstdint>

namespace wick::cuda {

constexpr int kMaxRank = 8;

// Up to kOperands operands over one shape, sizes and strides in elements.
template <int kOperands>
struct StridedLayout {
  int rank = 0;
  int64_t sizes[kMaxRank];
  int64_t strides[kOperands][kMaxRank];

  // Merges axis i into axis i + 1 wherever every operand steps over axis i exactly one full axis i + 1.
  void coalesce() {
    int out = rank - 1;
    for (int axis = rank - 2; axis >= 0; --axis) {
      bool mergeable = true;
      for (int k = 0; k < kOperands; ++k)
        mergeable = mergeable && strides[k][axis] == strides[k][out] * sizes[out];
      if (mergeable) {
        sizes[out] *= sizes[axis];
      } else {
        --out;
        sizes[out] = sizes[axis];
        for (int k = 0; k < kOperands; ++k) strides[k][out] = strides[k][axis];
      }
    }
    const int first = out < 0 ? 0 : out;
    const int merged = rank - first;
    for (int axis = 0; axis < merged; ++axis) {
      sizes[axis] = sizes[first + axis];
      for (int k = 0; k < kOperands; ++k) strides[k][axis] = strides[k][first + axis];
    }
    rank = rank == 0 ? 0 : merged;
  }

  // The offset of linear element i for each operand.
  template <typename Index>
  __device__ __forceinline__ void offsets(int64_t i, int64_t (&out)[kOperands]) const {
    Index rest = static_cast<Index>(i);
    for (int k = 0; k < kOperands; ++k) out[k] = 0;
    for (int axis = rank - 1; axis >= 0; --axis) {
      const Index size = static_cast<Index>(sizes[axis]);
      const Index index = rest % size;
      rest /= size;
      for (int k = 0; k < kOperands; ++k) out[k] += static_cast<int64_t>(index) * strides[k][axis];
    }
  }
};

}  // namespace wick::cuda
