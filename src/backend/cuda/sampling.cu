// Sampling primitives on the device, one block per row, so nothing waits on the host.
// Filters find their threshold by a 4-pass radix select over order-preserving 32-bit keys of the logits
// (8 bits a pass, a 256-bin histogram in shared memory): top-k counts elements per bin, top-p sums their
// probability; each pass descends into the bin where the running count/mass from the top reaches k / top_p.
// Elements whose key is >= the selected key are kept, so ties at the threshold stay, as on the CPU.
// The multinomial draw splits the row into one contiguous chunk per thread, scans the chunk sums across the
// block, and the thread whose chunk holds u · total walks it; u comes from the same Philox stream as the
// CPU's.
#include "backend/cuda/common.cuh"
#include "backend/cuda/kernels.h"
#include "backend/cuda/philox.cuh"

namespace wick::cuda {
namespace {

constexpr int kThreads = 1024;

// Order-preserving key: larger float ↔ larger unsigned key.
__device__ __forceinline__ uint32_t order_key(float v) {
  const uint32_t bits = __float_as_uint(v);
  return (bits & 0x80000000u) ? ~bits : bits | 0x80000000u;
}

template <typename T>
__device__ float row_max(const T* row, int64_t cols) {
  float m = -INFINITY;
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) m = fmaxf(m, to_float(row[j]));
  return block_max(m);
}

// Radix select. With `mass`, bins weigh exp(x − max) / total (top-p); else they count elements (top-k).
template <typename T, bool kMass>
__global__ void __launch_bounds__(kThreads) filter_kernel(const T* logits, T* out, int64_t cols, float goal) {
  __shared__ float bins[256];
  __shared__ uint32_t chosen_prefix;
  __shared__ float above;  // count or mass of elements whose key is above the current prefix range
  const T* row = logits + blockIdx.x * cols;
  T* out_row = out + blockIdx.x * cols;
  float max = 0, inv_total = 1;
  if (kMass) {
    max = row_max(row, cols);
    float total = 0;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) total += expf(to_float(row[j]) - max);
    inv_total = 1.0f / block_sum(total);
  }
  if (threadIdx.x == 0) {
    chosen_prefix = 0;
    above = 0;
  }
  for (int pass = 0; pass < 4; ++pass) {
    const int shift = 24 - 8 * pass;
    const uint32_t high_mask = pass == 0 ? 0u : ~0u << (shift + 8);
    for (int b = threadIdx.x; b < 256; b += blockDim.x) bins[b] = 0;
    __syncthreads();
    const uint32_t prefix = chosen_prefix;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
      const float v = to_float(row[j]);
      const uint32_t key = order_key(v);
      if ((key & high_mask) != (prefix & high_mask)) continue;
      atomicAdd(&bins[(key >> shift) & 0xffu], kMass ? expf(v - max) * inv_total : 1.0f);
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      float running = above;
      int bin = 255;
      for (; bin > 0; --bin) {
        if (running + bins[bin] >= goal) break;
        running += bins[bin];
      }
      above = running;
      chosen_prefix = (prefix & high_mask) | (static_cast<uint32_t>(bin) << shift);
    }
    __syncthreads();
  }
  const uint32_t threshold = chosen_prefix;
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
    const T v = row[j];
    out_row[j] = order_key(to_float(v)) >= threshold ? v : from_float<T>(-INFINITY);
  }
}

// Philox4x32-10, word 0, as the host's philox4x32 computes it.
__device__ uint32_t philox_word0(uint64_t seed, uint64_t draw, uint64_t counter) {
  return philox4x32(seed, draw, counter).w[0];
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
    sample_kernel(const T* logits, int64_t* ids, int64_t cols, uint64_t seed, uint64_t draw) {
  __shared__ double prefix[kThreads];
  const int64_t row_index = blockIdx.x;
  const T* row = logits + row_index * cols;
  const float max = row_max(row, cols);
  const int64_t chunk = (cols + blockDim.x - 1) / blockDim.x;
  const int64_t begin = min(cols, threadIdx.x * chunk), end = min(cols, begin + chunk);
  double local = 0;
  for (int64_t j = begin; j < end; ++j) local += exp(static_cast<double>(to_float(row[j]) - max));
  // Inclusive scan of the chunk sums (Hillis–Steele; the row is long, the block is one).
  prefix[threadIdx.x] = local;
  __syncthreads();
  for (int offset = 1; offset < static_cast<int>(blockDim.x); offset *= 2) {
    const double add = threadIdx.x >= offset ? prefix[threadIdx.x - offset] : 0.0;
    __syncthreads();
    prefix[threadIdx.x] += add;
    __syncthreads();
  }
  const double total = prefix[blockDim.x - 1];
  const double target = (static_cast<double>(philox_word0(seed, draw, row_index)) + 0.5) * 0x1p-32 * total;
  // The chunks' [exclusive, inclusive) prefix ranges partition [0, total); one thread owns the target.
  const double before = threadIdx.x > 0 ? prefix[threadIdx.x - 1] : 0.0;
  if (!(max > -INFINITY)) {  // nothing to draw from: index 0, as documented
    if (threadIdx.x == 0) ids[row_index] = 0;
    return;
  }
  if (local == 0 || target < before || target >= prefix[threadIdx.x]) return;
  double running = before;
  int64_t chosen = begin;
  for (int64_t j = begin; j < end; ++j) {
    const double p = exp(static_cast<double>(to_float(row[j]) - max));
    if (p == 0) continue;
    chosen = j;
    running += p;
    if (running > target) break;
  }
  ids[row_index] = chosen;
}

template <typename T>
__global__ void min_p_kernel(const T* logits, T* out, int64_t cols, float log_min_p) {
  const T* row = logits + blockIdx.x * cols;
  T* out_row = out + blockIdx.x * cols;
  const float threshold = row_max(row, cols) + log_min_p;
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
    const T v = row[j];
    out_row[j] = to_float(v) >= threshold ? v : from_float<T>(-INFINITY);
  }
}

template <typename T>
__global__ void penalties_kernel(const T* logits, const float* counts, T* out, int64_t n, float repetition,
                                 float frequency, float presence) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    float v = to_float(logits[i]);
    const float c = counts[i];
    if (c > 0) {
      v = v > 0 ? v / repetition : v * repetition;
      v -= frequency * c + presence;
    }
    out[i] = from_float<T>(v);
  }
}

}  // namespace

void min_p_filter(const Tensor& logits, double min_p, const Tensor& out) {
  const int64_t cols = logits.size(-1), rows = logits.numel() / cols;
  const Tensor in = logits.contiguous();
  with_float_type(logits.dtype(), "min_p_filter", [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_same_v<T, double>) {
      raise("min_p_filter", "CUDA filters take f32/f16/bf16 logits, got f64");
    } else {
      min_p_kernel<T><<<static_cast<unsigned>(rows), 1024, 0, stream_of(in)>>>(
          ptr<const T>(in), ptr<T>(out), cols, std::log(static_cast<float>(min_p)));
    }
  });
  check_launch("min_p_filter");
}

void apply_penalties(const Tensor& logits, const Tensor& counts, double repetition, double frequency,
                     double presence, const Tensor& out) {
  const int64_t n = logits.numel();
  if (n == 0) return;
  const Tensor in = logits.contiguous(), seen = counts.to(DType::f32).contiguous();
  with_float_type(logits.dtype(), "apply_penalties", [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_same_v<T, double>) {
      raise("apply_penalties", "CUDA penalties take f32/f16/bf16 logits, got f64");
    } else {
      penalties_kernel<T>
          <<<static_cast<unsigned>(std::min<int64_t>(ceil_div(n, 256), 65536)), 256, 0, stream_of(in)>>>(
              ptr<const T>(in), ptr<const float>(seen), ptr<T>(out), n, static_cast<float>(repetition),
              static_cast<float>(frequency), static_cast<float>(presence));
    }
  });
  check_launch("apply_penalties");
}

void top_k_filter(const Tensor& logits, int64_t k, const Tensor& out) {
  const int64_t cols = logits.size(-1), rows = logits.numel() / cols;
  const Tensor in = logits.contiguous();
  with_float_type(logits.dtype(), "top_k_filter", [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_same_v<T, double>) {
      raise("top_k_filter", "CUDA filters take f32/f16/bf16 logits, got f64");
    } else {
      filter_kernel<T, false><<<static_cast<unsigned>(rows), kThreads, 0, stream_of(in)>>>(
          ptr<const T>(in), ptr<T>(out), cols, static_cast<float>(k));
    }
  });
  check_launch("top_k_filter");
}

void top_p_filter(const Tensor& logits, double top_p, const Tensor& out) {
  const int64_t cols = logits.size(-1), rows = logits.numel() / cols;
  const Tensor in = logits.contiguous();
  with_float_type(logits.dtype(), "top_p_filter", [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_same_v<T, double>) {
      raise("top_p_filter", "CUDA filters take f32/f16/bf16 logits, got f64");
    } else {
      filter_kernel<T, true><<<static_cast<unsigned>(rows), kThreads, 0, stream_of(in)>>>(
          ptr<const T>(in), ptr<T>(out), cols, static_cast<float>(top_p));
    }
  });
  check_launch("top_p_filter");
}

void sample_multinomial(const Tensor& logits, uint64_t seed, uint64_t draw, const Tensor& out) {
  const int64_t cols = logits.size(-1), rows = logits.numel() / cols;
  if (rows == 0) return;
  const Tensor in = logits.contiguous();
  with_float_type(logits.dtype(), "sample_multinomial", [&](auto tag) {
    using T = decltype(tag);
    sample_kernel<T><<<static_cast<unsigned>(rows), kThreads, 0, stream_of(in)>>>(
        ptr<const T>(in), ptr<int64_t>(out), cols, seed, draw);
  });
  check_launch("sample_multinomial");
}

}  // namespace wick::cuda
