// Row kernels that keep the whole row in registers: each thread loads K 16-byte vectors of its row, so the
// row is read from memory once and written once (the ops are then bound by one read + one write, like a
// copy). Applies to f32/f16/bf16 rows whose length is a multiple of the vector width, 16-byte aligned, and at
// most 1024 threads × 8 vectors long; other rows take the plain row kernels.
#pragma once

#include <cstdint>

#include "backend/cuda/common.cuh"

namespace wick::cuda {

// Row-cache kernels are declared __launch_bounds__(kRowCacheThreads) so any block size up to it can launch.
constexpr int kRowCacheThreads = 1024;

struct RowCacheLaunch {
  int threads = 0;
  int vectors_per_thread = 0;  // K: 1, 2, 4 or 8
};

// The launch shape for rows of `cols` elements of `element_bytes`, or threads == 0 when the row cache cannot
// run.
inline RowCacheLaunch row_cache_launch(int64_t cols, size_t element_bytes,
                                       std::initializer_list<const void*> pointers) {
  if (element_bytes != 2 && element_bytes != 4) return {};
  const int64_t per_vector = 16 / static_cast<int64_t>(element_bytes);
  if (cols == 0 || cols % per_vector != 0) return {};
  for (const void* p : pointers)
    if (p != nullptr && reinterpret_cast<uintptr_t>(p) % 16 != 0) return {};
  const int64_t vectors = cols / per_vector;
  // At most 16 cached values per thread: with more, a full-size block needs so many registers that only one
  // block (one row) fits a multiprocessor and nothing overlaps its load, reduce and store phases.
  const int max_k = static_cast<int>(16 / per_vector);
  if (vectors > int64_t{kRowCacheThreads} * max_k) return {};
  // Blocks of at most 256 threads where K allows it: more rows in flight per multiprocessor, and more
  // independent 16-byte loads per thread, hide memory latency better than a few wide blocks.
  int k = 1;
  while (k < max_k && (vectors + k - 1) / k > 256) k *= 2;
  const int64_t threads = (vectors + k - 1) / k;
  return {static_cast<int>((threads + 31) / 32 * 32), k};
}

// Calls body(std::integral_constant<int, K>) for the launch's K.
template <typename F>
void with_vectors_per_thread(int k, F&& body) {
  switch (k) {
    case 1:
      return body(std::integral_constant<int, 1>{});
    case 2:
      return body(std::integral_constant<int, 2>{});
    case 4:
      return body(std::integral_constant<int, 4>{});
    default:
      return body(std::integral_constant<int, 8>{});
  }
}

// One thread's share of a row: vector j of the thread is row vector threadIdx.x + j·blockDim.x.
template <typename T, int K>
struct RowSlice {
  static constexpr int E = vector_elements<T>;
  float v[K][E];

  __device__ __forceinline__ static bool present(int j, int64_t vectors) {
    return threadIdx.x + static_cast<int64_t>(j) * blockDim.x < vectors;
  }
  __device__ __forceinline__ static int64_t first_column(int j) {
    return (threadIdx.x + static_cast<int64_t>(j) * blockDim.x) * E;
  }
  __device__ __forceinline__ void load(const T* row, int64_t vectors) {
#pragma unroll
    for (int j = 0; j < K; ++j) {
      if (!present(j, vectors)) continue;
      const uint4 raw = reinterpret_cast<const uint4*>(row)[threadIdx.x + j * blockDim.x];
      const T* e = reinterpret_cast<const T*>(&raw);
#pragma unroll
      for (int i = 0; i < E; ++i) v[j][i] = to_float(e[i]);
    }
  }
  __device__ __forceinline__ void store(T* row, int64_t vectors) const {
#pragma unroll
    for (int j = 0; j < K; ++j) {
      if (!present(j, vectors)) continue;
      uint4 raw;
      T* e = reinterpret_cast<T*>(&raw);
#pragma unroll
      for (int i = 0; i < E; ++i) e[i] = from_float<T>(v[j][i]);
      reinterpret_cast<uint4*>(row)[threadIdx.x + j * blockDim.x] = raw;
    }
  }
};

}  // namespace wick::cuda
