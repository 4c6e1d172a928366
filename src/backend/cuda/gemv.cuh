// The decode-shape product as a kernel template, shared by the plain GEMV (gemv.cu) and the fused decode
// steps (decode_fused.cu): for M <= 4 rows of A and each output column n, the sums Σ_k A[m, k]·B_r(n)[k] over
// the R rows of B that column reads (R = 1 for a plain product, 2 for a SwiGLU gate and up pair), handed to
// the problem's epilogue. Decode reads every weight once, so the kernel is bound by memory bandwidth:
// - each warp issues all 16-byte loads of its chunk of B (kVectorsInFlight per lane) before any math, so
//   many loads are in flight per warp;
// - where there are too few columns to keep the GPU busy, `parts` warps of one block split a column's K and
//   add their partial sums through shared memory in a fixed order (no atomics, the same result every run);
// - a problem may normalize A first (an RMSNorm prologue): the block computes the normalized rows into shared
//   memory while its first chunk of B is still in flight;
// - what the epilogue reads from memory (bias, C for beta, positions) is read before the dot products, so
//   no load waits at the end;
// - launched as a dependent launch (dependent_launch.cuh), a kernel starts while the one before it finishes
//   and waits for it before it reads A, C or anything else that kernel may write, and before it writes. A
//   problem whose B holds weights (kWeights: nothing queued before the kernel writes B) issues its first
//   loads of B before that wait, which hides most of the gap between kernels.
//
// A problem P provides: types and constants T, M, R, kNormalize, kWeights, Early; members columns, k, a (A,
// [M, k] dense); rows(n, b) setting the R row pointers of column n; early(n) returning the Early values
// column n's epilogue needs; store(n, sum, early) writing column n from sum[R][M]; with kNormalize also
// norm_weight ([k]) and eps. It may set kMinBlocksPerSm (see min_blocks_per_sm).
#pragma once

#include <atomic>

#include "backend/cuda/common.cuh"
#include "backend/cuda/dependent_launch.cuh"

namespace wick::cuda::decode_gemv {

constexpr int kMaxRows = 4;
constexpr int kWarps = 8;             // per block
constexpr int kVectorsInFlight = 8;   // 16-byte B vectors a lane loads before its math, over all R rows
constexpr int64_t kBusyWarps = 2048;  // fewer warps than this (one per column) leave bandwidth unused

template <typename T>
constexpr int kElements = 16 / static_cast<int>(sizeof(T));

// Weights are read once per step: keep them out of L1, which holds A, and first in line for eviction from
// L2, which then keeps the step's activations and KV cache across the ~1 GB the weights stream through it.
__device__ __forceinline__ uint4 load_streaming(const void* p) {
  uint4 v;
  uint64_t policy;
  asm("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;\n" : "=l"(policy));  // pure: hoisted, shared
  asm volatile("ld.global.nc.L1::no_allocate.L2::cache_hint.v4.u32 {%0, %1, %2, %3}, [%4], %5;\n"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(p), "l"(policy));
  return v;
}

// A 16-byte vector as E floats and back, through its 32-bit words (element 0 in the low half of word 0), so
// the compiler keeps one 16-byte load or store rather than splitting it into elements.
template <typename T>
__device__ __forceinline__ void unpack(const uint4& raw, float (&out)[kElements<T>]) {
  const uint32_t words[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    if constexpr (std::is_same_v<T, float>) {
      out[i] = __uint_as_float(words[i]);
    } else if constexpr (std::is_same_v<T, __nv_bfloat16>) {
      out[2 * i] = __uint_as_float(words[i] << 16);
      out[2 * i + 1] = __uint_as_float(words[i] & 0xffff0000u);
    } else {
      out[2 * i] = __half2float(__ushort_as_half(static_cast<unsigned short>(words[i] & 0xffffu)));
      out[2 * i + 1] = __half2float(__ushort_as_half(static_cast<unsigned short>(words[i] >> 16)));
    }
  }
}

template <typename T>
__device__ __forceinline__ uint32_t bits_of(float v) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    return __bfloat16_as_ushort(__float2bfloat16_rn(v));
  } else {
    return __half_as_ushort(__float2half_rn(v));
  }
}

template <typename T>
__device__ __forceinline__ uint4 pack(const float (&in)[kElements<T>]) {
  uint32_t words[4];
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    if constexpr (std::is_same_v<T, float>) {
      words[i] = __float_as_uint(in[i]);
    } else {
      words[i] = bits_of<T>(in[2 * i]) | (bits_of<T>(in[2 * i + 1]) << 16);
    }
  }
  return make_uint4(words[0], words[1], words[2], words[3]);
}

// Sums each of the M values over the block (all warps), in a fixed order; every thread gets the totals.
template <int M>
__device__ __forceinline__ void block_sums(float (&v)[M]) {
  __shared__ float warp_sums[kWarps][M];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
#pragma unroll
  for (int m = 0; m < M; ++m)
    for (int offset = 16; offset > 0; offset /= 2) v[m] += __shfl_xor_sync(0xffffffffu, v[m], offset);
  if (lane == 0)
#pragma unroll
    for (int m = 0; m < M; ++m) warp_sums[warp][m] = v[m];
  __syncthreads();
#pragma unroll
  for (int m = 0; m < M; ++m) {
    v[m] = 0;
    for (int w = 0; w < kWarps; ++w) v[m] += warp_sums[w][m];
  }
}

// rms_norm of M dense rows of k elements into `out` (shared memory), each value rounded to T as ops::rms_norm
// stores it: x · rsqrt(mean(x²) + eps) · weight, computed in f32.
template <typename T, int M>
__device__ void normalize_rows(const T* x, const T* weight, float eps, int64_t k, T* out) {
  constexpr int E = kElements<T>;
  const int64_t vectors = k / E;
  float sum_sq[M] = {};
  for (int64_t v = threadIdx.x; v < vectors; v += blockDim.x)
#pragma unroll
    for (int m = 0; m < M; ++m) {
      float xs[E];
      unpack<T>(reinterpret_cast<const uint4*>(x + m * k)[v], xs);
#pragma unroll
      for (int e = 0; e < E; ++e) sum_sq[m] += xs[e] * xs[e];
    }
  block_sums<M>(sum_sq);
  float rstd[M];
#pragma unroll
  for (int m = 0; m < M; ++m) rstd[m] = rsqrtf(sum_sq[m] / static_cast<float>(k) + eps);
  for (int64_t v = threadIdx.x; v < vectors; v += blockDim.x) {
    float ws[E];
    unpack<T>(reinterpret_cast<const uint4*>(weight)[v], ws);
#pragma unroll
    for (int m = 0; m < M; ++m) {
      float xs[E];
      unpack<T>(reinterpret_cast<const uint4*>(x + m * k)[v], xs);
#pragma unroll
      for (int e = 0; e < E; ++e) xs[e] = xs[e] * rstd[m] * ws[e];
      reinterpret_cast<uint4*>(out + m * k)[v] = pack<T>(xs);
    }
  }
  __syncthreads();
}

// One warp's share of a column: the vectors first + i·stride (i < V) of each of its R rows of B.
template <typename T, int M, int R, int V>
struct WarpChunk {
  uint4 b[R][V];

  __device__ __forceinline__ void load(const T* const (&rows)[R], int64_t first, int64_t stride,
                                       int64_t vectors) {
#pragma unroll
    for (int i = 0; i < V; ++i) {
      const int64_t v = first + i * stride;
#pragma unroll
      for (int r = 0; r < R; ++r)
        b[r][i] = v < vectors ? load_streaming(reinterpret_cast<const uint4*>(rows[r]) + v)
                              : make_uint4(0, 0, 0, 0);
    }
  }

  __device__ __forceinline__ void accumulate(const T* a, int64_t k, int64_t first, int64_t stride,
                                             int64_t vectors, float (&sum)[R][M]) const {
    constexpr int E = kElements<T>;
#pragma unroll
    for (int i = 0; i < V; ++i) {
      const int64_t v = first + i * stride;
      if (v >= vectors) break;
      float bs[R][E];
#pragma unroll
      for (int r = 0; r < R; ++r) unpack<T>(b[r][i], bs[r]);
#pragma unroll
      for (int m = 0; m < M; ++m) {
        float as[E];
        unpack<T>(reinterpret_cast<const uint4*>(a + m * k)[v], as);
#pragma unroll
        for (int r = 0; r < R; ++r)
#pragma unroll
          for (int e = 0; e < E; ++e) sum[r][m] += as[e] * bs[r][e];
      }
    }
  }
};

// Blocks a multiprocessor should hold at once: with one row of A, four (registers capped at 64) hide more
// latency than fewer, larger ones; more rows of A, or a heavy epilogue, need the registers.
template <typename P>
constexpr int min_blocks_per_sm() {
  if constexpr (requires { P::kMinBlocksPerSm; }) {
    return P::kMinBlocksPerSm;
  } else {
    return P::M == 1 ? 4 : 1;
  }
}

// Block = kWarps warps; `parts` (1, 2, 4 or 8) consecutive warps share a column, so a block covers
// kWarps / parts columns per tile and loops over tiles.
template <typename P>
__global__ void __launch_bounds__(kWarps * 32, min_blocks_per_sm<P>())
    decode_gemv_kernel(const P p, int parts) {
  using T = typename P::T;
  constexpr int M = P::M, R = P::R, E = kElements<T>, V = kVectorsInFlight / R;
  extern __shared__ uint4 normalized[];  // M×k of T, with kNormalize
  __shared__ float partial[kWarps][R * M];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int part = warp % parts, columns_per_tile = kWarps / parts;
  const int64_t vectors = p.k / E, stride = 32 * int64_t(parts);
  const int64_t tiles = (p.columns + columns_per_tile - 1) / columns_per_tile;
  const T* a = p.a;
  allow_next_grid();  // every block has started: the next kernel may begin loading its weights
  for (int64_t tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
    const int64_t column = tile * columns_per_tile + warp / parts;
    const bool active = column < p.columns;
    const T* rows[R];
    WarpChunk<T, M, R, V> chunk;
    int64_t base = part * 32;  // the chunk's first vector, the same for the whole warp
    const bool first = tile == blockIdx.x;
    if (first && !P::kWeights) wait_for_previous_grid();
    if (active) {
      p.rows(column, rows);
      chunk.load(rows, base + lane, stride, vectors);
    }
    if (first && P::kWeights) wait_for_previous_grid();  // what follows reads or writes the step's tensors
    typename P::Early early{};
    if (active) early = p.early(column);
    if constexpr (P::kNormalize) {
      if (first) {  // once per block, while the first chunk is in flight
        T* rows_normalized = reinterpret_cast<T*>(normalized);
        normalize_rows<T, M>(p.a, p.norm_weight, p.eps, p.k, rows_normalized);
        a = rows_normalized;
      }
    }
    float sum[R][M] = {};
    if (active) {
      for (;;) {
        chunk.accumulate(a, p.k, base + lane, stride, vectors, sum);
        base += stride * V;
        if (base >= vectors) break;
        chunk.load(rows, base + lane, stride, vectors);
      }
#pragma unroll
      for (int r = 0; r < R; ++r)
#pragma unroll
        for (int m = 0; m < M; ++m)
          for (int offset = 16; offset > 0; offset /= 2)
            sum[r][m] += __shfl_xor_sync(0xffffffffu, sum[r][m], offset);
    }
    if (parts == 1) {
      if (active && lane == 0) p.store(column, sum, early);
      continue;
    }
    if (lane == 0)
#pragma unroll
      for (int r = 0; r < R; ++r)
#pragma unroll
        for (int m = 0; m < M; ++m) partial[warp][r * M + m] = sum[r][m];
    __syncthreads();
    if (active && part == 0 && lane == 0) {
      float total[R][M] = {};
      for (int q = 0; q < parts; ++q)
#pragma unroll
        for (int r = 0; r < R; ++r)
#pragma unroll
          for (int m = 0; m < M; ++m) total[r][m] += partial[warp + q][r * M + m];
      p.store(column, total, early);
    }
    __syncthreads();  // partial[] is rewritten by the next tile
  }
}

// Warps per column: split K while fewer than kBusyWarps warps would work and each part keeps at least 32
// vectors (one per lane).
inline int split_parts(int64_t columns, int64_t vectors) {
  int parts = 1;
  while (parts < kWarps && columns * parts < kBusyWarps && vectors / (2 * parts) >= 32) parts *= 2;
  return parts;
}

// Two output columns per warp where there are plenty of columns and a row fits one chunk: twice the loads in
// flight per warp, for the same registers.
inline bool pair_columns(int64_t columns, int64_t vectors) {
  return columns >= 2 * kBusyWarps && vectors <= 32 * (kVectorsInFlight / 2);
}

// Blocks of the kernel one multiprocessor holds at once (asked once per kernel; shared memory rarely limits
// it, and a few blocks too many only wait for a slot).
template <typename P>
int resident_blocks_per_sm(size_t shared, std::string_view op) {
  static std::atomic<int> cached{0};
  int blocks = cached.load();
  if (blocks == 0) {
    check(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, decode_gemv_kernel<P>, kWarps * 32, shared),
          op, "cudaOccupancyMaxActiveBlocksPerMultiprocessor");
    blocks = std::max(blocks, 1);
    cached.store(blocks);
  }
  return blocks;
}

// As many blocks as are resident at once, each looping over its tiles: no second wave waits for a slot, and
// a prologue is paid once per block, not once per tile.
template <typename P>
void launch(const P& problem, int device, cudaStream_t stream, std::string_view op) {
  using T = typename P::T;
  if (problem.columns == 0) return;
  const int parts = split_parts(problem.columns, problem.k / kElements<T>);
  const int64_t tiles = ceil_div(problem.columns, kWarps / parts);
  const size_t shared = P::kNormalize ? static_cast<size_t>(P::M * problem.k) * sizeof(T) : 0;
  int sms = 0;
  check(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device), op, "cudaDeviceGetAttribute");
  const int64_t blocks =
      std::min<int64_t>(tiles, int64_t{std::max(1, sms)} * resident_blocks_per_sm<P>(shared, op));
  launch_dependent(decode_gemv_kernel<P>, dim3(static_cast<unsigned>(blocks)), dim3(kWarps * 32), shared,
                   stream, device, op, problem, parts);
}

// The linear layer as a problem: C[m, j] = alpha·Σ_k A[m, k]·B[j, k] (+ beta·C[m, j]) (+ bias[j]) for the n
// rows j of B, one (R = 1) or two adjacent ones (R = 2) per warp; with kNormalize, A is rms_norm(a).
template <typename T_, int M_, int R_, bool kNormalize_, bool kWeights_>
struct LinearProblem {
  using T = T_;
  static constexpr int M = M_, R = R_;
  static constexpr bool kNormalize = kNormalize_, kWeights = kWeights_;
  const T* a;
  const T* b;
  T* c;
  const T* bias;
  int64_t n, columns, k;
  float alpha, beta;
  const T* norm_weight;
  float eps;

  __device__ void rows(int64_t column, const T* (&row)[R]) const {
#pragma unroll
    for (int r = 0; r < R; ++r)
      row[r] = b + min(column * R + r, n - 1) * k;  // an odd n reads its last row twice
  }
  struct Early {
    float c[R][M];  // beta·C
    float bias[R];
  };
  __device__ Early early(int64_t column) const {
    Early e{};
#pragma unroll
    for (int r = 0; r < R; ++r) {
      const int64_t j = min(column * R + r, n - 1);
      if (bias) e.bias[r] = to_float(bias[j]);
      if (beta != 0.0f)
#pragma unroll
        for (int m = 0; m < M; ++m) e.c[r][m] = beta * to_float(c[m * n + j]);
    }
    return e;
  }
  __device__ void store(int64_t column, const float (&sum)[R][M], const Early& e) const {
#pragma unroll
    for (int r = 0; r < R; ++r) {
      const int64_t j = column * R + r;
      if (j >= n) break;
#pragma unroll
      for (int m = 0; m < M; ++m) {
        float value = alpha * sum[r][m];
        if (beta != 0.0f) value += e.c[r][m];
        if (bias) value += e.bias[r];
        c[m * n + j] = from_float<T>(value);
      }
    }
  }
};

template <typename T, int M, bool kNormalize, bool kWeights>
void launch_linear(const T* a, const T* b, T* c, const T* bias, int64_t n, int64_t k, float alpha, float beta,
                   const T* norm_weight, float eps, int device, cudaStream_t stream, std::string_view op) {
  if (pair_columns(n, k / kElements<T>)) {
    launch(LinearProblem<T, M, 2, kNormalize, kWeights>{a, b, c, bias, n, ceil_div(n, 2), k, alpha, beta,
                                                        norm_weight, eps},
           device, stream, op);
  } else {
    launch(
        LinearProblem<T, M, 1, kNormalize, kWeights>{a, b, c, bias, n, n, k, alpha, beta, norm_weight, eps},
        device, stream, op);
  }
}

// The shared memory a normalizing problem needs must fit the default 48 KB.
inline bool normalized_rows_fit(int64_t rows, int64_t k, size_t element_bytes) {
  return static_cast<size_t>(rows * k) * element_bytes <= 48 * 1024;
}

// Calls body(std::integral_constant<int, M>) for 1 <= rows <= kMaxRows.
template <typename F>
void with_rows(int64_t rows, F&& body) {
  switch (rows) {
    case 1:
      return body(std::integral_constant<int, 1>{});
    case 2:
      return body(std::integral_constant<int, 2>{});
    case 3:
      return body(std::integral_constant<int, 3>{});
    default:
      return body(std::integral_constant<int, 4>{});
  }
}

}  // namespace wick::cuda::decode_gemv
