// Shared pieces of the flash attention kernels (flash_attention.cu, flash_attention_backward.cu): warp-level
// tensor-core primitives (mma.sync m16n8k16, ldmatrix, cp.async as inline PTX), the swizzled shared-memory
// tile layout, and the row geometry of packed query rows.
//
// Query rows are packed per key/value head: the q_heads / kv_heads query heads that share a key/value head
// form one tall matrix of group·q_len rows, row r being query (r mod q_len) of head kv_head·group + r /
// q_len. A tile of rows then serves several heads at once when q_len is small (decode), and the f32 row
// statistics
// ([batch, q_heads, q_len], contiguous) are addressed by (batch·q_heads + kv_head·group)·q_len + r.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "backend/cuda/common.cuh"

namespace wick::cuda::flash {

// ---- tensor-core primitives ----

__device__ __forceinline__ uint32_t smem_address(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// 16 bytes global -> shared, bypassing L1; src_bytes = 0 writes zeros (rows past the end).
__device__ __forceinline__ void cp_async_16(uint32_t dst, const void* src, bool valid) {
  const int src_bytes = valid ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(src_bytes));
}
__device__ __forceinline__ void cp_async_commit() {
  asm volatile("cp.async.commit_group;\n" ::);
}
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], uint32_t address) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(address));
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], uint32_t address) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(address));
}

// d += a·b for one 16×8×16 tile: a row-major 16×16 (4 registers of 2 elements), b 16×8 "col" (2 registers),
// d 16×8 f32. Lane (g = lane/4, t = lane%4) holds d rows g and g+8, columns 2t and 2t+1.
template <typename T>
__device__ __forceinline__ void mma_16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  } else {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
}

// Two floats as one register of two 16-bit values, the lower index in the low half.
template <typename T>
__device__ __forceinline__ uint32_t pack2(float lo, float hi) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<const uint32_t*>(&v);
  } else {
    const __half2 v = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<const uint32_t*>(&v);
  }
}

template <typename T>
__device__ __forceinline__ void store2(T* p, float lo, float hi) {
  *reinterpret_cast<uint32_t*>(p) = pack2<T>(lo, hi);
}

// Accumulator tiles ct[2kk], ct[2kk+1] (16 rows × 16 columns) as the A operand of the next product, whose
// k-dimension is those columns.
template <typename T>
__device__ __forceinline__ void accumulator_as_a(uint32_t (&a)[4], const float (&c0)[4],
                                                 const float (&c1)[4]) {
  a[0] = pack2<T>(c0[0], c0[1]);
  a[1] = pack2<T>(c0[2], c0[3]);
  a[2] = pack2<T>(c1[0], c1[1]);
  a[3] = pack2<T>(c1[2], c1[3]);
}

// ---- shared-memory tiles ----

// A tile of rows of D 16-bit elements; each row's 16-byte chunks are XOR-swizzled by the row's low three bits
// so that the eight row addresses of an ldmatrix (and the chunk writes of cp.async) hit distinct banks. Rows
// of 32 elements (64 bytes) pair up in one 128-byte bank line, so there the swizzle uses the pair index.
template <int D>
__device__ __forceinline__ int swizzled(int row, int chunk) {
  if constexpr (D == 32) return row * D + ((chunk ^ ((row >> 1) & 3)) << 3);
  return row * D + ((chunk ^ (row & 7)) << 3);
}

// Byte address, for lane `lane`, of the ldmatrix.x4 that loads the A operand (16 rows × 16 columns starting
// at row0, column 16·kk) of a row-major tile.
template <int D>
__device__ __forceinline__ uint32_t a_address(uint32_t base, int row0, int kk, int lane) {
  return base + 2 * swizzled<D>(row0 + (lane & 15), kk * 2 + (lane >> 4));
}
// ... the B operands of two 8-column n-tiles, where B[k][n] = tile[n0 + n][16·kk + k] (keys as n: Q·Kᵀ).
template <int D>
__device__ __forceinline__ uint32_t bt_address(uint32_t base, int n0, int kk, int lane) {
  return base + 2 * swizzled<D>(n0 + (lane & 7) + ((lane >> 4) << 3), kk * 2 + ((lane >> 3) & 1));
}
// ... the B operands of two 8-column n-tiles, where B[k][n] = tile[16·kk + k][n0 + n] (rows as k: P·V),
// loaded with .trans.
template <int D>
__device__ __forceinline__ uint32_t b_address(uint32_t base, int kk, int n0, int lane) {
  return base + 2 * swizzled<D>(kk * 16 + (lane & 7) + (((lane >> 3) & 1) << 3), (n0 >> 3) + (lane >> 4));
}

// Copies rows [0, ROWS) of a tile from global memory; row_pointer(row) gives the row's first element or null
// for rows past the end, which are zero-filled (reading nothing; `any` is a valid address to name instead).
template <int D, int ROWS, int THREADS, typename T, typename RowPointer>
__device__ __forceinline__ void load_tile(uint32_t base, const T* any, RowPointer row_pointer) {
  constexpr int chunks = D / 8;
  static_assert((ROWS * chunks) % THREADS == 0, "tile chunks must spread evenly over the threads");
#pragma unroll
  for (int i = 0; i < ROWS * chunks / THREADS; ++i) {
    const int index = i * THREADS + static_cast<int>(threadIdx.x);
    const int row = index / chunks, chunk = index % chunks;
    const T* src = row_pointer(row);
    cp_async_16(base + 2 * swizzled<D>(row, chunk), src ? src + chunk * 8 : any, src != nullptr);
  }
}

// ---- online softmax ----

// 2^x on the special-function unit with denormal results flushed to zero: a probability below 2^-126 of the
// row maximum's weighs nothing in the sums, and skipping the denormal fix-up saves instructions per score.
__device__ __forceinline__ float exp2_ftz(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

// Scales row half h (rows g or g + 8 of the lane's accumulators) of a tile's scores to log2 units and returns
// the lane's maximum. Key index key0 + 8n + e belongs to s[n][2h + e]; with kMasked, keys at or past
// `visible` become -inf. Tiles entirely inside every row's visible range take kMasked = false, so the common
// case carries no per-score compare and select.
template <int BN, bool kMasked>
__device__ __forceinline__ float scale_scores(float (&s)[BN / 8][4], int h, float scale_log2, int key0,
                                              int visible) {
  float mx = -INFINITY;
#pragma unroll
  for (int n = 0; n < BN / 8; ++n) {
#pragma unroll
    for (int e = 0; e < 2; ++e) {
      float x = s[n][2 * h + e] * scale_log2;
      if constexpr (kMasked) {
        if (key0 + n * 8 + e >= visible) x = -INFINITY;
      }
      s[n][2 * h + e] = x;
      mx = fmaxf(mx, x);
    }
  }
  return mx;
}

// ---- geometry ----

struct Geometry {
  int batch, q_heads, kv_heads, group, q_len, kv_len;
  int rows;  // group·q_len packed query rows per key/value head
  long long query_offset;
  bool causal;
  const int64_t* kv_lengths;  // [batch] on the device, or null

  __device__ __forceinline__ int kv_limit(int b) const {
    int n = kv_len;
    if (kv_lengths)
      n = static_cast<int>(max(0LL, min(static_cast<long long>(n), static_cast<long long>(kv_lengths[b]))));
    return n;
  }
  // Keys [0, visible) are seen by query i.
  __device__ __forceinline__ int visible(int i, int limit) const {
    if (!causal) return limit;
    return static_cast<int>(max(0LL, min(static_cast<long long>(limit), i + query_offset + 1)));
  }
  // Fewest and most keys seen by the packed rows [begin, end) (end > begin); visible() grows with i.
  __device__ __forceinline__ void visible_range(int begin, int end, int limit, int& lo, int& hi) const {
    const bool crosses = begin / q_len != (end - 1) / q_len;
    lo = visible(crosses ? 0 : begin % q_len, limit);
    hi = visible(crosses ? q_len - 1 : (end - 1) % q_len, limit);
  }
};

// Row pointer of packed row r of key/value head (b, kv_head) in a [batch, heads, seq, D] tensor.
template <typename T>
__device__ __forceinline__ T* row_of(T* base, long long stride_b, long long stride_h, long long stride_s,
                                     const Geometry& g, int b, int kv_head, int r) {
  const int head = kv_head * g.group + r / g.q_len, i = r % g.q_len;
  return base + b * stride_b + head * stride_h + i * stride_s;
}

struct Strides {
  long long b, h, s;
};

// Forward arguments (flash_attention.cu, flash_attention_sm90.cu).
struct ForwardParams {
  const void* q;
  const void* k;
  const void* v;
  void* out;
  float* lse;
  float* part_out;  // [splits, total_rows, D] when split, else null
  float* part_lse;  // [splits, total_rows]
  Strides qs, ks, vs, os;
  Geometry g;
  float scale_log2;
  int tiles_per_split;
  long long total_rows;  // batch·q_heads·q_len
};

// The Hopper forward (wgmma, flash_attention_sm90.cu): 128 query rows a block in two warpgroups, 64 keys a
// tile; available where this build carries it and the device can run it. `two_blocks` caps the registers so
// that two blocks share a multiprocessor (head_dim 128).
bool sm90_forward_available(int device);
void launch_sm90_forward(bool bf16, int head_dim, bool two_blocks, const ForwardParams& p, dim3 grid,
                         cudaStream_t stream, int device);

}  // namespace wick::cuda::flash
