// LayerNorm of one short row held by one warp in registers: lane l owns the 16-byte vectors l + 32·j (j < K)
// of the row, already converted to float. Shared by the LayerNorm kernel and the kernels that compute a row
// and normalize it in the same pass, so both give the same bits for the same row.
#pragma once

#include <cstdint>

#include "backend/cuda/common.cuh"
#include "backend/cuda/row_cache.cuh"

namespace wick::cuda {

// y_row = (v - mean) / sqrt(var + eps) · weight + bias over `cols` = 32·K·E or fewer columns (`vectors`
// of them), statistics by warp shuffles in a fixed order. weight and bias may be null.
template <typename T, int K>
__device__ __forceinline__ void layer_norm_warp_row(const float (&v)[K][vector_elements<T>], int64_t vectors,
                                                    int64_t cols, const T* weight, const T* bias, T* y_row,
                                                    float eps) {
  constexpr int E = vector_elements<T>;
  const int lane = threadIdx.x % 32;
  float sum = 0.0f;
#pragma unroll
  for (int j = 0; j < K; ++j) {
    if (lane + 32 * j >= vectors) continue;
#pragma unroll
    for (int i = 0; i < E; ++i) sum += v[j][i];
  }
  for (int offset = 16; offset > 0; offset /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, offset);
  const float mean = sum / static_cast<float>(cols);
  float var = 0.0f;
#pragma unroll
  for (int j = 0; j < K; ++j) {
    if (lane + 32 * j >= vectors) continue;
#pragma unroll
    for (int i = 0; i < E; ++i) var += (v[j][i] - mean) * (v[j][i] - mean);
  }
  for (int offset = 16; offset > 0; offset /= 2) var += __shfl_xor_sync(0xffffffffu, var, offset);
  const float rstd = rsqrtf(var / static_cast<float>(cols) + eps);
#pragma unroll
  for (int j = 0; j < K; ++j) {
    if (lane + 32 * j >= vectors) continue;
    float w[E], b[E];
#pragma unroll
    for (int i = 0; i < E; ++i) w[i] = 1.0f, b[i] = 0.0f;
    if (weight) load_vector(weight, lane + 32 * j, w);
    if (bias) load_vector(bias, lane + 32 * j, b);
    uint4 raw;
    T* e = reinterpret_cast<T*>(&raw);
#pragma unroll
    for (int i = 0; i < E; ++i) e[i] = from_float<T>((v[j][i] - mean) * rstd * w[i] + b[i]);
    reinterpret_cast<uint4*>(y_row)[lane + 32 * j] = raw;
  }
}

// The vectors per lane (1, 2, 4 or 8) for a row of `vectors` 16-byte vectors (at most 32·8).
inline int layer_norm_warp_vectors_per_lane(int64_t vectors) {
  return vectors <= 32 ? 1 : vectors <= 64 ? 2 : vectors <= 128 ? 4 : 8;
}

}  // namespace wick::cuda
