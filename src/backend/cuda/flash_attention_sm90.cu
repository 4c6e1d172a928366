// Flash attention forward for Hopper (sm_90a): the same scheme as flash_attention.cu, with the two products
// on wgmma. A block owns 128 packed query rows in two warpgroups of 64; each 64-key tile of K and V arrives
// in shared memory by cp.async, two stages deep, laid out in the 128-byte-swizzled form wgmma reads (rows of
// 64 elements, head_dim 128 as two such column halves). S = Q·Kᵀ reads both operands from shared memory
// (K-major); the accumulator rows of each warp are those of mma.sync, so masking and the online softmax are
// unchanged; O += P·V takes P from registers and V from shared memory as its MN-major (transposed) operand.
#include <atomic>

#include "backend/cuda/flash_attention.cuh"

#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define WICK_FLASH_SM90 1
#endif

namespace wick::cuda::flash {
namespace {

constexpr int kRows = 128, kKeys = 64, kThreads = 256;

#if defined(WICK_FLASH_SM90)

// A shared-memory matrix descriptor with 128-byte swizzling: start address, leading and stride byte offsets.
__device__ __forceinline__ uint64_t descriptor(uint32_t address, uint32_t leading, uint32_t stride) {
  return static_cast<uint64_t>((address & 0x3FFFF) >> 4) |
         static_cast<uint64_t>((leading >> 4) & 0x3FFF) << 16 |
         static_cast<uint64_t>((stride >> 4) & 0x3FFF) << 32 | uint64_t(1) << 62;
}

__device__ __forceinline__ void wgmma_fence() {
  asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
}
__device__ __forceinline__ void wgmma_commit() {
  asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
}
__device__ __forceinline__ void wgmma_wait_all() {
  asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory");
}
// Ties the accumulators to this point: the compiler may not read them before the wait above.
template <int N>
__device__ __forceinline__ void wgmma_hold(float (&d)[N][4]) {
#pragma unroll
  for (int i = 0; i < N; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) asm volatile("" : "+f"(d[i][j])::"memory");
}
// cp.async wrote through the generic proxy; wgmma reads through the async proxy.
__device__ __forceinline__ void fence_proxy_async() {
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}

// d (64×N per warpgroup) = or += A·B with both operands in shared memory, K-major.
template <typename T, int N>
__device__ void wgmma_ss(float (&d)[N / 8][4], uint64_t a, uint64_t b, int accumulate);
// d += A·B with A in registers (the mma.sync A fragment of each warp's 16 rows) and B MN-major in shared
// memory.
template <typename T, int N>
__device__ void wgmma_rs_tb(float (&d)[N / 8][4], const uint32_t (&a)[4], uint64_t b);

template <>
__device__ __forceinline__ void wgmma_ss<__nv_bfloat16, 64>(float (&d)[8][4], uint64_t a, uint64_t b,
                                                            int accumulate) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 "
      "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, "
      "%22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, %32, %33, p, 1, 1, 0, 0;\n}\n"
      : "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]), "+f"(d[1][0]), "+f"(d[1][1]),
        "+f"(d[1][2]), "+f"(d[1][3]), "+f"(d[2][0]), "+f"(d[2][1]), "+f"(d[2][2]), "+f"(d[2][3]),
        "+f"(d[3][0]), "+f"(d[3][1]), "+f"(d[3][2]), "+f"(d[3][3]), "+f"(d[4][0]), "+f"(d[4][1]),
        "+f"(d[4][2]), "+f"(d[4][3]), "+f"(d[5][0]), "+f"(d[5][1]), "+f"(d[5][2]), "+f"(d[5][3]),
        "+f"(d[6][0]), "+f"(d[6][1]), "+f"(d[6][2]), "+f"(d[6][3]), "+f"(d[7][0]), "+f"(d[7][1]),
        "+f"(d[7][2]), "+f"(d[7][3])
      : "l"(a), "l"(b), "r"(accumulate));
}

template <>
__device__ __forceinline__ void wgmma_rs_tb<__nv_bfloat16, 64>(float (&d)[8][4], const uint32_t (&a)[4],
                                                               uint64_t b) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 "
      "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, "
      "%22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, {%32, %33, %34, %35}, %36, p, 1, 1, 1;\n}\n"
      : "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]), "+f"(d[1][0]), "+f"(d[1][1]),
        "+f"(d[1][2]), "+f"(d[1][3]), "+f"(d[2][0]), "+f"(d[2][1]), "+f"(d[2][2]), "+f"(d[2][3]),
        "+f"(d[3][0]), "+f"(d[3][1]), "+f"(d[3][2]), "+f"(d[3][3]), "+f"(d[4][0]), "+f"(d[4][1]),
        "+f"(d[4][2]), "+f"(d[4][3]), "+f"(d[5][0]), "+f"(d[5][1]), "+f"(d[5][2]), "+f"(d[5][3]),
        "+f"(d[6][0]), "+f"(d[6][1]), "+f"(d[6][2]), "+f"(d[6][3]), "+f"(d[7][0]), "+f"(d[7][1]),
        "+f"(d[7][2]), "+f"(d[7][3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(1));
}

template <>
__device__ __forceinline__ void wgmma_rs_tb<__nv_bfloat16, 128>(float (&d)[16][4], const uint32_t (&a)[4],
                                                                uint64_t b) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 "
      "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, "
      "%22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, "
      "%42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, "
      "%62, %63}, {%64, %65, %66, %67}, %68, p, 1, 1, 1;\n}\n"
      : "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]), "+f"(d[1][0]), "+f"(d[1][1]),
        "+f"(d[1][2]), "+f"(d[1][3]), "+f"(d[2][0]), "+f"(d[2][1]), "+f"(d[2][2]), "+f"(d[2][3]),
        "+f"(d[3][0]), "+f"(d[3][1]), "+f"(d[3][2]), "+f"(d[3][3]), "+f"(d[4][0]), "+f"(d[4][1]),
        "+f"(d[4][2]), "+f"(d[4][3]), "+f"(d[5][0]), "+f"(d[5][1]), "+f"(d[5][2]), "+f"(d[5][3]),
        "+f"(d[6][0]), "+f"(d[6][1]), "+f"(d[6][2]), "+f"(d[6][3]), "+f"(d[7][0]), "+f"(d[7][1]),
        "+f"(d[7][2]), "+f"(d[7][3]), "+f"(d[8][0]), "+f"(d[8][1]), "+f"(d[8][2]), "+f"(d[8][3]),
        "+f"(d[9][0]), "+f"(d[9][1]), "+f"(d[9][2]), "+f"(d[9][3]), "+f"(d[10][0]), "+f"(d[10][1]),
        "+f"(d[10][2]), "+f"(d[10][3]), "+f"(d[11][0]), "+f"(d[11][1]), "+f"(d[11][2]), "+f"(d[11][3]),
        "+f"(d[12][0]), "+f"(d[12][1]), "+f"(d[12][2]), "+f"(d[12][3]), "+f"(d[13][0]), "+f"(d[13][1]),
        "+f"(d[13][2]), "+f"(d[13][3]), "+f"(d[14][0]), "+f"(d[14][1]), "+f"(d[14][2]), "+f"(d[14][3]),
        "+f"(d[15][0]), "+f"(d[15][1]), "+f"(d[15][2]), "+f"(d[15][3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(1));
}

template <>
__device__ __forceinline__ void wgmma_ss<__half, 64>(float (&d)[8][4], uint64_t a, uint64_t b,
                                                     int accumulate) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16 "
      "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, "
      "%22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, %32, %33, p, 1, 1, 0, 0;\n}\n"
      : "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]), "+f"(d[1][0]), "+f"(d[1][1]),
        "+f"(d[1][2]), "+f"(d[1][3]), "+f"(d[2][0]), "+f"(d[2][1]), "+f"(d[2][2]), "+f"(d[2][3]),
        "+f"(d[3][0]), "+f"(d[3][1]), "+f"(d[3][2]), "+f"(d[3][3]), "+f"(d[4][0]), "+f"(d[4][1]),
        "+f"(d[4][2]), "+f"(d[4][3]), "+f"(d[5][0]), "+f"(d[5][1]), "+f"(d[5][2]), "+f"(d[5][3]),
        "+f"(d[6][0]), "+f"(d[6][1]), "+f"(d[6][2]), "+f"(d[6][3]), "+f"(d[7][0]), "+f"(d[7][1]),
        "+f"(d[7][2]), "+f"(d[7][3])
      : "l"(a), "l"(b), "r"(accumulate));
}

template <>
__device__ __forceinline__ void wgmma_rs_tb<__half, 64>(float (&d)[8][4], const uint32_t (&a)[4],
                                                        uint64_t b) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16 "
      "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, "
      "%22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, {%32, %33, %34, %35}, %36, p, 1, 1, 1;\n}\n"
      : "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]), "+f"(d[1][0]), "+f"(d[1][1]),
        "+f"(d[1][2]), "+f"(d[1][3]), "+f"(d[2][0]), "+f"(d[2][1]), "+f"(d[2][2]), "+f"(d[2][3]),
        "+f"(d[3][0]), "+f"(d[3][1]), "+f"(d[3][2]), "+f"(d[3][3]), "+f"(d[4][0]), "+f"(d[4][1]),
        "+f"(d[4][2]), "+f"(d[4][3]), "+f"(d[5][0]), "+f"(d[5][1]), "+f"(d[5][2]), "+f"(d[5][3]),
        "+f"(d[6][0]), "+f"(d[6][1]), "+f"(d[6][2]), "+f"(d[6][3]), "+f"(d[7][0]), "+f"(d[7][1]),
        "+f"(d[7][2]), "+f"(d[7][3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(1));
}

template <>
__device__ __forceinline__ void wgmma_rs_tb<__half, 128>(float (&d)[16][4], const uint32_t (&a)[4],
                                                         uint64_t b) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.f16.f16 "
      "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, "
      "%22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, "
      "%42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, "
      "%62, %63}, {%64, %65, %66, %67}, %68, p, 1, 1, 1;\n}\n"
      : "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]), "+f"(d[1][0]), "+f"(d[1][1]),
        "+f"(d[1][2]), "+f"(d[1][3]), "+f"(d[2][0]), "+f"(d[2][1]), "+f"(d[2][2]), "+f"(d[2][3]),
        "+f"(d[3][0]), "+f"(d[3][1]), "+f"(d[3][2]), "+f"(d[3][3]), "+f"(d[4][0]), "+f"(d[4][1]),
        "+f"(d[4][2]), "+f"(d[4][3]), "+f"(d[5][0]), "+f"(d[5][1]), "+f"(d[5][2]), "+f"(d[5][3]),
        "+f"(d[6][0]), "+f"(d[6][1]), "+f"(d[6][2]), "+f"(d[6][3]), "+f"(d[7][0]), "+f"(d[7][1]),
        "+f"(d[7][2]), "+f"(d[7][3]), "+f"(d[8][0]), "+f"(d[8][1]), "+f"(d[8][2]), "+f"(d[8][3]),
        "+f"(d[9][0]), "+f"(d[9][1]), "+f"(d[9][2]), "+f"(d[9][3]), "+f"(d[10][0]), "+f"(d[10][1]),
        "+f"(d[10][2]), "+f"(d[10][3]), "+f"(d[11][0]), "+f"(d[11][1]), "+f"(d[11][2]), "+f"(d[11][3]),
        "+f"(d[12][0]), "+f"(d[12][1]), "+f"(d[12][2]), "+f"(d[12][3]), "+f"(d[13][0]), "+f"(d[13][1]),
        "+f"(d[13][2]), "+f"(d[13][3]), "+f"(d[14][0]), "+f"(d[14][1]), "+f"(d[14][2]), "+f"(d[14][3]),
        "+f"(d[15][0]), "+f"(d[15][1]), "+f"(d[15][2]), "+f"(d[15][3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(1));
}

// Byte offset of (row, 16-byte chunk) in a tile of `ROWS` rows stored as 128-byte-swizzled column halves.
template <int ROWS>
__device__ __forceinline__ uint32_t swizzled128(int row, int chunk) {
  return (chunk >> 3) * (ROWS * 128) + row * 128 + (((chunk & 7) ^ (row & 7)) << 4);
}

template <int D, int ROWS, typename T, typename RowPointer>
__device__ __forceinline__ void load_tile128(uint32_t base, const T* any, RowPointer row_pointer) {
  constexpr int chunks = D / 8;
  static_assert((ROWS * chunks) % kThreads == 0, "tile chunks must spread evenly over the threads");
#pragma unroll
  for (int i = 0; i < ROWS * chunks / kThreads; ++i) {
    const int index = i * kThreads + static_cast<int>(threadIdx.x);
    const int row = index / chunks, chunk = index % chunks;
    const T* src = row_pointer(row);
    cp_async_16(base + swizzled128<ROWS>(row, chunk), src ? src + chunk * 8 : any, src != nullptr);
  }
}

#endif  // WICK_FLASH_SM90

// MIN_BLOCKS = 2 caps the registers so two blocks share a multiprocessor (head_dim 128 then spills a few).
template <typename T, int D, int MIN_BLOCKS>
__global__ void __launch_bounds__(kThreads, MIN_BLOCKS) flash_forward_sm90_kernel(const ForwardParams p) {
#if defined(WICK_FLASH_SM90)
  constexpr int BM = kRows, BN = kKeys;
  extern __shared__ __align__(1024) unsigned char smem[];
  const uint32_t q_base = (smem_address(smem) + 1023u) & ~1023u;  // swizzle atoms are 1024-byte aligned
  const uint32_t k_base = q_base + BM * D * 2;
  const uint32_t v_base = k_base + 2 * BN * D * 2;

  const Geometry g = p.g;
  const int b = blockIdx.x / g.kv_heads, kv_head = blockIdx.x % g.kv_heads;
  const int r0 = (gridDim.y - 1 - blockIdx.y) * BM;  // the longest causal rows first
  const int r_end = min(r0 + BM, g.rows);
  const int limit = g.kv_limit(b);
  int lo, hi;
  g.visible_range(r0, r_end, limit, lo, hi);
  const int n_tiles = (hi + BN - 1) / BN;
  const int t_begin = blockIdx.z * p.tiles_per_split;
  const int t_end = min(n_tiles, t_begin + p.tiles_per_split);

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, group = warp / 4;
  const int gq = lane >> 2, tq = lane & 3;
  int row[2], vis[2];
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    row[h] = r0 + warp * 16 + gq + 8 * h;
    vis[h] = row[h] < g.rows ? g.visible(row[h] % g.q_len, limit) : limit;
  }

  float o[D / 8][4];
#pragma unroll
  for (int n = 0; n < D / 8; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};

  if (t_begin < t_end) {
    const T* q = static_cast<const T*>(p.q);
    const T* k = static_cast<const T*>(p.k) + b * p.ks.b + kv_head * p.ks.h;
    const T* v = static_cast<const T*>(p.v) + b * p.vs.b + kv_head * p.vs.h;
    load_tile128<D, BM, T>(q_base, q, [&](int i) -> const T* {
      const int r = r0 + i;
      return r < g.rows ? row_of(q, p.qs.b, p.qs.h, p.qs.s, g, b, kv_head, r) : nullptr;
    });
    auto load_kv = [&](int t, int stage) {
      const int n0 = t * BN;
      load_tile128<D, BN, T>(k_base + stage * BN * D * 2, k, [&](int i) -> const T* {
        return n0 + i < limit ? k + (n0 + i) * p.ks.s : nullptr;
      });
      load_tile128<D, BN, T>(v_base + stage * BN * D * 2, v, [&](int i) -> const T* {
        return n0 + i < limit ? v + (n0 + i) * p.vs.s : nullptr;
      });
    };
    load_kv(t_begin, 0);
    cp_async_commit();

    for (int t = t_begin; t < t_end; ++t) {
      const int stage = (t - t_begin) & 1;
      if (t + 1 < t_end) load_kv(t + 1, stage ^ 1);
      cp_async_commit();
      cp_async_wait<1>();
      fence_proxy_async();
      __syncthreads();
      const uint32_t ks = k_base + stage * BN * D * 2, vs = v_base + stage * BN * D * 2;

      float s[BN / 8][4];
#pragma unroll
      for (int n = 0; n < BN / 8; ++n) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
      wgmma_fence();
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk) {
        const uint64_t a =
            descriptor(q_base + (kk >> 2) * (BM * 128) + group * 64 * 128 + (kk & 3) * 32, 16, 1024);
        const uint64_t bk = descriptor(ks + (kk >> 2) * (BN * 128) + (kk & 3) * 32, 16, 1024);
        wgmma_ss<T, BN>(s, a, bk, kk > 0 ? 1 : 0);
      }
      wgmma_commit();
      wgmma_wait_all();
      wgmma_hold(s);

      const int n0 = t * BN;
      const bool masked = n0 + BN > lo;
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        float mx = masked ? scale_scores<BN, true>(s, h, p.scale_log2, n0 + 2 * tq, vis[h])
                          : scale_scores<BN, false>(s, h, p.scale_log2, n0 + 2 * tq, vis[h]);
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        const float m_new = fmaxf(m[h], mx);
        const float m_use = m_new == -INFINITY ? 0.0f : m_new;
        const float correction = exp2_ftz(m[h] - m_use);
        m[h] = m_new;
        float sum = 0.0f;
#pragma unroll
        for (int n = 0; n < BN / 8; ++n) {
#pragma unroll
          for (int e = 0; e < 2; ++e) {
            const float x = exp2_ftz(s[n][2 * h + e] - m_use);
            s[n][2 * h + e] = x;
            sum += x;
          }
        }
        l[h] = l[h] * correction + sum;
#pragma unroll
        for (int n = 0; n < D / 8; ++n) {
          o[n][2 * h] *= correction;
          o[n][2 * h + 1] *= correction;
        }
      }

      uint32_t pa[BN / 16][4];
#pragma unroll
      for (int kk = 0; kk < BN / 16; ++kk) accumulator_as_a<T>(pa[kk], s[2 * kk], s[2 * kk + 1]);
      wgmma_fence();
#pragma unroll
      for (int kk = 0; kk < BN / 16; ++kk)
        wgmma_rs_tb<T, D>(o, pa[kk], descriptor(vs + kk * 16 * 128, BN * 128, 1024));
      wgmma_commit();
      wgmma_wait_all();
      wgmma_hold(o);
      __syncthreads();  // this stage is refilled by the next iteration's load
    }
  }

  const long long stat_base = (static_cast<long long>(b) * g.q_heads + kv_head * g.group) * g.q_len;
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    float sum = l[h];
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    sum += __shfl_xor_sync(0xffffffffu, sum, 2);
    if (row[h] >= g.rows) continue;
    const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
    const float row_lse = sum > 0.0f ? (m[h] + log2f(sum)) * 0.69314718055994531f : -INFINITY;
    const long long stat = stat_base + row[h];
    if (p.part_out) {
      const long long at = blockIdx.z * p.total_rows + stat;
      float* dst = p.part_out + at * D;
#pragma unroll
      for (int n = 0; n < D / 8; ++n)
        *reinterpret_cast<float2*>(dst + n * 8 + 2 * tq) =
            make_float2(o[n][2 * h] * inv, o[n][2 * h + 1] * inv);
      if (tq == 0) p.part_lse[at] = row_lse;
    } else {
      T* dst = row_of(static_cast<T*>(p.out), p.os.b, p.os.h, p.os.s, g, b, kv_head, row[h]);
#pragma unroll
      for (int n = 0; n < D / 8; ++n)
        store2<T>(dst + n * 8 + 2 * tq, o[n][2 * h] * inv, o[n][2 * h + 1] * inv);
      if (tq == 0) p.lse[stat] = row_lse;
    }
  }
#else
  __trap();  // built without sm_90a code: sm90_forward_available() keeps this from being launched
#endif
}

template <typename T, int D, int MIN_BLOCKS>
void launch(const ForwardParams& p, dim3 grid, cudaStream_t stream, int device) {
  constexpr int bytes = (kRows + 4 * kKeys) * D * 2 + 1024;
  static std::atomic<uint64_t> configured{0};
  const uint64_t bit = uint64_t(1) << (device & 63);
  if (!(configured.load() & bit)) {
    check(cudaFuncSetAttribute(flash_forward_sm90_kernel<T, D, MIN_BLOCKS>,
                               cudaFuncAttributeMaxDynamicSharedMemorySize, bytes),
          "attention", "cudaFuncSetAttribute");
    configured.fetch_or(bit);
  }
  flash_forward_sm90_kernel<T, D, MIN_BLOCKS><<<grid, kThreads, bytes, stream>>>(p);
}

}  // namespace

bool sm90_forward_available(int device) {
  static std::atomic<int> cached[64] = {};  // 0 unknown, 1 yes, 2 no
  const int slot = device & 63;
  if (const int known = cached[slot].load(); known != 0) return known == 1;
  int major = 0, minor = 0;
  check(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device), "attention",
        "cudaDeviceGetAttribute");
  check(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device), "attention",
        "cudaDeviceGetAttribute");
  bool available = major == 9 && minor == 0;
  if (available) {
    // Machine code for sm_90 must be in the binary (the PTX fallback has no wgmma).
    cudaFuncAttributes attributes{};
    available =
        cudaFuncGetAttributes(&attributes, flash_forward_sm90_kernel<__nv_bfloat16, 64, 1>) == cudaSuccess &&
        attributes.binaryVersion == 90;
    cudaGetLastError();
  }
  cached[slot].store(available ? 1 : 2);
  return available;
}

void launch_sm90_forward(bool bf16, int head_dim, bool two_blocks, const ForwardParams& p, dim3 grid,
                         cudaStream_t stream, int device) {
  auto run = [&](auto tag) {
    using T = decltype(tag);
    if (head_dim == 64)
      launch<T, 64, 1>(p, grid, stream, device);  // fits two blocks a multiprocessor already
    else if (two_blocks)
      launch<T, 128, 2>(p, grid, stream, device);
    else
      launch<T, 128, 1>(p, grid, stream, device);
  };
  if (bf16)
    run(__nv_bfloat16{});
  else
    run(__half{});
}

}  // namespace wick::cuda::flash
