// argmax and top-k over the last axis, one block per row (long argmax rows: many blocks, then one). The
// ranking is a strict order — larger value first, NaN above every number, lower index first on ties — so
// top-k is k rounds of "the best element ranked after the previous pick", each a block reduction over the row
// (good for the small k of sampling).
#include "backend/cuda/common.cuh"
#include "backend/cuda/kernels.h"

namespace wick::cuda {
namespace {

struct Ranked {
  float value;
  int64_t index;  // -1: none
};

__device__ __forceinline__ bool ranks_before(Ranked a, Ranked b) {
  if (b.index < 0) return a.index >= 0;
  if (a.index < 0) return false;
  const bool na = isnan(a.value), nb = isnan(b.value);
  if (na || nb) return na && (!nb || a.index < b.index);
  if (a.value != b.value) return a.value > b.value;
  return a.index < b.index;
}

__device__ Ranked block_best(Ranked mine) {
  __shared__ Ranked partial[32];
  for (int offset = 16; offset > 0; offset /= 2) {
    Ranked other{__shfl_xor_sync(0xffffffffu, mine.value, offset),
                 __shfl_xor_sync(0xffffffffu, mine.index, offset)};
    if (ranks_before(other, mine)) mine = other;
  }
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  __syncthreads();
  if (lane == 0) partial[warp] = mine;
  __syncthreads();
  mine = lane < static_cast<int>(blockDim.x / 32) ? partial[lane] : Ranked{0.f, -1};
  for (int offset = 16; offset > 0; offset /= 2) {
    Ranked other{__shfl_xor_sync(0xffffffffu, mine.value, offset),
                 __shfl_xor_sync(0xffffffffu, mine.index, offset)};
    if (ranks_before(other, mine)) mine = other;
  }
  return mine;
}

template <typename T>
__global__ void topk_kernel(const T* x, T* values, int64_t* indices, int64_t cols, int64_t k) {
  const int64_t row = blockIdx.x;
  const T* in = x + row * cols;
  Ranked previous{0.f, -1};
  for (int64_t round = 0; round < k; ++round) {
    Ranked best{0.f, -1};
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
      const Ranked candidate{to_float(in[j]), j};
      if (previous.index >= 0 && !ranks_before(previous, candidate)) continue;
      if (ranks_before(candidate, best)) best = candidate;
    }
    best = block_best(best);
    if (threadIdx.x == 0) {
      if (values) values[row * k + round] = in[best.index];
      indices[row * k + round] = best.index;
    }
    previous = best;
  }
}

// Long rows (a vocabulary of logits) are split over many blocks: each ranks its chunk of a row, then one
// block per row ranks the chunks' winners (the same strict order, so the same pick).
constexpr int64_t kArgmaxChunk = 2048;

template <typename T>
__global__ void argmax_chunks_kernel(const T* x, float* chunk_values, int64_t* chunk_indices, int64_t cols) {
  const int64_t row = blockIdx.y, chunk = blockIdx.x;
  const int64_t begin = chunk * kArgmaxChunk, end = min(cols, begin + kArgmaxChunk);
  const T* in = x + row * cols;
  Ranked best{0.f, -1};
  for (int64_t j = begin + threadIdx.x; j < end; j += blockDim.x) {
    const Ranked candidate{to_float(in[j]), j};
    if (ranks_before(candidate, best)) best = candidate;
  }
  best = block_best(best);
  if (threadIdx.x == 0) {
    chunk_values[row * gridDim.x + chunk] = best.value;
    chunk_indices[row * gridDim.x + chunk] = best.index;
  }
}

__global__ void argmax_of_chunks_kernel(const float* chunk_values, const int64_t* chunk_indices,
                                        int64_t chunks, int64_t* indices) {
  const int64_t row = blockIdx.x;
  Ranked best{0.f, -1};
  for (int64_t c = threadIdx.x; c < chunks; c += blockDim.x) {
    const Ranked candidate{chunk_values[row * chunks + c], chunk_indices[row * chunks + c]};
    if (ranks_before(candidate, best)) best = candidate;
  }
  best = block_best(best);
  if (threadIdx.x == 0) indices[row] = best.index;
}

}  // namespace

void argmax(const Tensor& x, const Tensor& indices) {
  const int64_t cols = x.size(-1), rows = x.numel() / cols;
  const Tensor xd = x.contiguous();
  const int64_t chunks = ceil_div(cols, kArgmaxChunk);
  if (chunks >= 4 && rows <= 65535) {
    const Tensor values = Tensor::empty({rows * chunks}, DType::f32, x.device());
    const Tensor winners = Tensor::empty({rows * chunks}, DType::i64, x.device());
    with_float_type(x.dtype(), "argmax", [&](auto tag) {
      using T = decltype(tag);
      argmax_chunks_kernel<T>
          <<<dim3(static_cast<unsigned>(chunks), static_cast<unsigned>(rows)), 256, 0, stream_of(x)>>>(
              ptr<const T>(xd), ptr<float>(values), ptr<int64_t>(winners), cols);
    });
    check_launch("argmax");
    argmax_of_chunks_kernel<<<static_cast<unsigned>(rows), 128, 0, stream_of(x)>>>(
        ptr<const float>(values), ptr<const int64_t>(winners), chunks, ptr<int64_t>(indices));
    check_launch("argmax");
    return;
  }
  with_float_type(x.dtype(), "argmax", [&](auto tag) {
    using T = decltype(tag);
    topk_kernel<T><<<static_cast<unsigned>(rows), row_threads(cols), 0, stream_of(x)>>>(
        ptr<const T>(xd), nullptr, ptr<int64_t>(indices), cols, 1);
  });
  check_launch("argmax");
}

void topk(const Tensor& x, int64_t k, const Tensor& values, const Tensor& indices) {
  const int64_t cols = x.size(-1), rows = x.numel() / cols;
  const Tensor xd = x.contiguous();
  with_float_type(x.dtype(), "topk", [&](auto tag) {
    using T = decltype(tag);
    topk_kernel<T><<<static_cast<unsigned>(rows), row_threads(cols), 0, stream_of(x)>>>(
        ptr<const T>(xd), ptr<T>(values), ptr<int64_t>(indices), cols, k);
  });
  check_launch("topk");
}

}  // namespace wick::cuda
