#include "backend/cuda/decode_attention.h"

#include <algorithm>
#include <atomic>
#include <cmath>

#include "backend/cuda/common.cuh"
#include "backend/cuda/dependent_launch.cuh"
#include "backend/cuda/flash_attention.cuh"
#include "backend/cuda/kernels.h"

namespace wick::cuda {
namespace {

constexpr int kWarps = 8;
// Shared memory for the key and value rows loaded before the previous kernel ends (a settled cache prefix).
constexpr int kStageBytes = 96 * 1024;

template <typename T, int D>
constexpr int staged_rows_max() {
  return kStageBytes / (2 * D * static_cast<int>(sizeof(T)));
}

// The most dynamic shared memory a launch asks for: the staging area and the scores of the longest cache.
constexpr int kSharedBytesMax = kStageBytes + static_cast<int>(kDecodeAttentionMaxKeys * sizeof(float));

struct DecodeParams {
  const void* q;
  const void* k;
  const void* v;
  void* out;
  float* lse;
  long long qs[2], ks[3], vs[3], os[2];  // strides: q/out (batch, head); k/v (batch, head, key)
  int q_heads, group, kv_len;
  int stage_rows;  // rows the shared staging area holds; 0: nothing is loaded before the previous kernel ends
  long long query_offset;  // causal: keys j <= query_offset are seen
  bool causal;
  const int64_t* kv_lengths;
  float scale;
};

// Staged rows are 16-byte chunks with chunk c of row j at c ^ (j mod 8): the lanes of a quarter warp, reading
// the same chunk of eight consecutive rows, hit eight different bank groups.
__device__ __forceinline__ int staged_chunk(int row, int chunk, int chunks) {
  return row * chunks + (chunk ^ (row & 7));
}

template <typename T, int D>
__global__ void __launch_bounds__(kWarps * 32) decode_attention_kernel(const DecodeParams p) {
  constexpr int E = 16 / sizeof(T), VECTORS = D / E, PER_LANE = D / 32;
  extern __shared__ uint4 staged[];  // keys [stage_rows][VECTORS], values [stage_rows][VECTORS], scores
  __shared__ float q_row[D];
  __shared__ float reduce[kWarps];
  __shared__ float partial[kWarps][D];
  uint4* staged_keys = staged;
  uint4* staged_values = staged + p.stage_rows * VECTORS;
  float* scores = reinterpret_cast<float*>(staged + 2 * p.stage_rows * VECTORS);  // [kv_len]
  const int b = blockIdx.x / p.q_heads, head = blockIdx.x % p.q_heads, kv_head = head / p.group;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  int limit = p.kv_len;
  if (p.kv_lengths)
    limit = static_cast<int>(
        max(0LL, min(static_cast<long long>(limit), static_cast<long long>(p.kv_lengths[b]))));
  if (p.causal) limit = static_cast<int>(max(0LL, min(static_cast<long long>(limit), p.query_offset + 1)));
  const T* keys = static_cast<const T*>(p.k) + b * p.ks[0] + kv_head * p.ks[1];
  const T* values = static_cast<const T*>(p.v) + b * p.vs[0] + kv_head * p.vs[1];

  // The settled rows (all but the last) are requested before waiting for the kernel that wrote q and the
  // last row, so their loads overlap it.
  const int settled = min(max(limit - 1, 0), p.stage_rows);
  for (int i = threadIdx.x; i < settled * VECTORS; i += blockDim.x) {
    const int j = i / VECTORS, c = i % VECTORS, slot = staged_chunk(j, c, VECTORS);
    flash::cp_async_16(flash::smem_address(staged_keys + slot), keys + j * p.ks[2] + c * E, true);
    flash::cp_async_16(flash::smem_address(staged_values + slot), values + j * p.vs[2] + c * E, true);
  }
  flash::cp_async_commit();
  allow_next_grid();
  wait_for_previous_grid();

  const T* q = static_cast<const T*>(p.q) + b * p.qs[0] + head * p.qs[1];
  for (int d = threadIdx.x; d < D; d += blockDim.x) q_row[d] = to_float(q[d]) * p.scale;
  flash::cp_async_wait<0>();
  __syncthreads();

  // Scores: one key per lane, its row read as 16-byte vectors.
  float local_max = -INFINITY;
  for (int j = threadIdx.x; j < limit; j += blockDim.x) {
    uint4 raw[VECTORS];
    if (j < settled) {
#pragma unroll
      for (int i = 0; i < VECTORS; ++i) raw[i] = staged_keys[staged_chunk(j, i, VECTORS)];
    } else {
      const uint4* row = reinterpret_cast<const uint4*>(keys + j * p.ks[2]);
#pragma unroll
      for (int i = 0; i < VECTORS; ++i) raw[i] = row[i];
    }
    float s = 0.0f;
#pragma unroll
    for (int i = 0; i < VECTORS; ++i) {
      const T* e = reinterpret_cast<const T*>(&raw[i]);
#pragma unroll
      for (int x = 0; x < E; ++x) s += to_float(e[x]) * q_row[i * E + x];
    }
    scores[j] = s;
    local_max = fmaxf(local_max, s);
  }
  for (int offset = 16; offset > 0; offset /= 2)
    local_max = fmaxf(local_max, __shfl_xor_sync(0xffffffffu, local_max, offset));
  if (lane == 0) reduce[warp] = local_max;
  __syncthreads();
  float row_max = -INFINITY;
  for (int w = 0; w < kWarps; ++w) row_max = fmaxf(row_max, reduce[w]);
  __syncthreads();  // reduce[] is reused for the sum

  float local_sum = 0.0f;
  for (int j = threadIdx.x; j < limit; j += blockDim.x) {
    const float e = __expf(scores[j] - row_max);
    scores[j] = e;
    local_sum += e;
  }
  for (int offset = 16; offset > 0; offset /= 2) local_sum += __shfl_xor_sync(0xffffffffu, local_sum, offset);
  if (lane == 0) reduce[warp] = local_sum;
  __syncthreads();  // also publishes scores[]
  float sum = 0.0f;
  for (int w = 0; w < kWarps; ++w) sum += reduce[w];

  // P·V: warp w takes keys j ≡ w (mod kWarps); lane l the dimensions l·PER_LANE ... (consecutive).
  const int lane_chunk = lane * PER_LANE / E, lane_offset = lane * PER_LANE % E;
  float acc[PER_LANE] = {};
#pragma unroll 4
  for (int j = warp; j < limit; j += kWarps) {
    const float pj = scores[j];
    const T* row =
        j < settled
            ? reinterpret_cast<const T*>(staged_values + staged_chunk(j, lane_chunk, VECTORS)) + lane_offset
            : values + j * p.vs[2] + lane * PER_LANE;
#pragma unroll
    for (int x = 0; x < PER_LANE; ++x) acc[x] += pj * to_float(row[x]);
  }
#pragma unroll
  for (int x = 0; x < PER_LANE; ++x) partial[warp][lane * PER_LANE + x] = acc[x];
  __syncthreads();
  T* out = static_cast<T*>(p.out) + b * p.os[0] + head * p.os[1];
  const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
  for (int d = threadIdx.x; d < D; d += blockDim.x) {
    float total = 0.0f;
    for (int w = 0; w < kWarps; ++w) total += partial[w][d];
    out[d] = from_float<T>(total * inv);
  }
  if (threadIdx.x == 0) p.lse[blockIdx.x] = sum > 0.0f ? row_max + logf(sum) : -INFINITY;
}

}  // namespace

bool decode_attention_applies(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out) {
  if (!q.device().is_cuda() || (q.dtype() != DType::bf16 && q.dtype() != DType::f16)) return false;
  const int64_t d = q.size(3);
  if ((d != 64 && d != 128) || q.size(2) != 1 || k.size(2) > kDecodeAttentionMaxKeys) return false;
  // The flash kernels' row layout (same device and dtype, 16-byte-aligned rows with a unit last stride).
  if (!flash_layout_supported(q, q) || !flash_layout_supported(k, q) || !flash_layout_supported(v, q) ||
      !flash_layout_supported(out, q))
    return false;
  // One block per query head: where those fill the GPU, the flash kernel's shared key/value tiles win.
  return q.size(0) * q.size(1) <= multiprocessors(q.device().index);
}

void decode_attention(const Tensor& q, const Tensor& k, const Tensor& v, const ops::AttentionOptions& options,
                      const Tensor& out, const Tensor& lse) {
  const int64_t batch = q.size(0), q_heads = q.size(1), kv_len = k.size(2), d = q.size(3);
  if (batch == 0 || q_heads == 0) return;
  DeviceGuard guard(q.device().index);
  const Tensor lengths =
      options.kv_lengths.defined() ? options.kv_lengths.to(DType::i64).contiguous() : Tensor();
  DecodeParams p{};
  p.q = q.data_ptr();
  p.k = k.data_ptr();
  p.v = v.data_ptr();
  p.out = out.data_ptr();
  p.lse = static_cast<float*>(lse.data_ptr());
  p.qs[0] = q.stride(0), p.qs[1] = q.stride(1);
  p.os[0] = out.stride(0), p.os[1] = out.stride(1);
  for (int axis = 0; axis < 3; ++axis) p.ks[axis] = k.stride(axis), p.vs[axis] = v.stride(axis);
  p.q_heads = static_cast<int>(q_heads);
  p.group = static_cast<int>(q_heads / k.size(1));
  p.kv_len = static_cast<int>(kv_len);
  p.query_offset = options.query_offset >= 0 ? options.query_offset : kv_len - 1;
  p.causal = options.causal;
  p.kv_lengths = lengths.defined() ? static_cast<const int64_t*>(lengths.data_ptr()) : nullptr;
  p.scale =
      static_cast<float>(std::isnan(options.scale) ? 1.0 / std::sqrt(static_cast<double>(d)) : options.scale);
  // Lengths converted here come from the kernel just before this one, so they are not settled.
  const bool settled = options.cache_prefix_settled &&
                       (!lengths.defined() || lengths.data_ptr() == options.kv_lengths.data_ptr());
  const auto blocks = static_cast<unsigned>(batch * q_heads);
  const int device = q.device().index;
  auto launch = [&](auto tag, auto dim) {
    using T = decltype(tag);
    constexpr int D = decltype(dim)::value;
    p.stage_rows = settled ? std::min<int>(staged_rows_max<T, D>(), p.kv_len) : 0;
    const size_t shared = 2 * static_cast<size_t>(p.stage_rows) * D * sizeof(T) +
                          static_cast<size_t>(std::max<int64_t>(kv_len, 1)) * sizeof(float);
    static std::atomic<uint64_t> configured{0};
    allow_shared_memory(decode_attention_kernel<T, D>, kSharedBytesMax, device, configured, "attention");
    launch_dependent(decode_attention_kernel<T, D>, dim3(blocks), dim3(kWarps * 32), shared, stream_of(q),
                     device, "attention", p);
  };
  auto with_dim = [&](auto tag) {
    if (d == 64)
      launch(tag, std::integral_constant<int, 64>{});
    else
      launch(tag, std::integral_constant<int, 128>{});
  };
  if (q.dtype() == DType::bf16)
    with_dim(__nv_bfloat16{});
  else
    with_dim(__half{});
  check_launch("attention");
}

}  // namespace wick::cuda
