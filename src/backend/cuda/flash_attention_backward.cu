// Flash attention backward on the tensor cores (FlashAttention-2 scheme, deterministic):
//   1. prepare: per query row, Dsum = rowsum(dO∘O) and lse·log2(e) (f32 scratch);
//   2. dK/dV: a block owns 16·WARPS keys of one key/value head (its K and V tiles stay in shared memory) and
//      walks the tiles of packed query rows that can see them (all heads of the group, so the group sums come
//      out of the loop); per tile, Sᵀ = K·Qᵀ and dPᵀ = V·dOᵀ, Pᵀ = exp2(Sᵀ·scale·log2 e − lse₂) masked,
//      dSᵀ = Pᵀ∘(dPᵀ − Dsum), dV += Pᵀ·dO and dK += dSᵀ·Q with Pᵀ and dSᵀ taken from the accumulators.
//      With few key/value heads there are too few such blocks to fill the GPU, so the query rows are split
//      among several blocks per key tile, whose f32 partial sums a small kernel adds in a fixed order;
//   3. dQ: a block owns 16·WARPS packed query rows and walks the key tiles they see, recomputing S and dP:
//      dQ += dS·K.
// The separate dQ pass recomputes two of the products instead of accumulating dQ with atomics, so every
// gradient is a fixed-order sum: the same bits on every run.
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <string>

#include "backend/cuda/flash_attention.cuh"
#include "backend/cuda/kernels.h"

namespace wick::cuda {
namespace {

using namespace flash;

struct BackwardParams {
  const void* q;
  const void* k;
  const void* v;
  const void* dout;
  void* dq;
  void* dk;
  void* dv;
  const float* lse2;  // [batch·q_heads·q_len] lse·log2(e)
  const float* dsum;  // rowsum(dO∘O)
  Strides qs, ks, vs, dos, dqs, dks, dvs;
  Geometry g;
  float scale_log2, scale;
  // dK/dV split over the packed query rows: split z of gridDim.z walks query tiles [z·split_tiles,
  // (z+1)·split_tiles) and, with more than one split, writes f32 partial sums
  // [split][batch·kv_heads][kv_len][D] that a reduction adds in order of z.
  int split_tiles;
  float* part_dk;
  float* part_dv;
};

constexpr float kLog2e = 1.4426950408889634f;

// One warp per query row.
template <typename T, int D>
__global__ void flash_backward_prepare_kernel(const T* out, const T* dout, const float* lse, Strides os,
                                              Strides dos, float* lse2, float* dsum, long long total_rows,
                                              int q_heads, int q_len) {
  const long long r = blockIdx.x * static_cast<long long>(blockDim.x / 32) + threadIdx.x / 32;
  if (r >= total_rows) return;
  const int lane = threadIdx.x % 32;
  const long long i = r % q_len, head = (r / q_len) % q_heads,
                  b = r / (static_cast<long long>(q_len) * q_heads);
  const T* o = out + b * os.b + head * os.h + i * os.s;
  const T* g = dout + b * dos.b + head * dos.h + i * dos.s;
  float acc = 0.0f;
#pragma unroll
  for (int d = lane * 2; d < D; d += 64)
    acc += to_float(o[d]) * to_float(g[d]) + to_float(o[d + 1]) * to_float(g[d + 1]);
  for (int offset = 16; offset > 0; offset /= 2) acc += __shfl_xor_sync(0xffffffffu, acc, offset);
  if (lane == 0) {
    dsum[r] = acc;
    lse2[r] = lse[r] * kLog2e;
  }
}

template <typename T, int D, int WARPS, int BM>
__global__ void __launch_bounds__(WARPS * 32) flash_backward_dkdv_kernel(const BackwardParams p) {
  constexpr int BN = 16 * WARPS, THREADS = WARPS * 32;
  extern __shared__ __align__(128) unsigned char smem[];
  // K [BN][D], V [BN][D], Q [2][BM][D], dO [2][BM][D], then per query row of each stage: lse₂, Dsum, visible.
  const uint32_t k_base = smem_address(smem);
  const uint32_t v_base = k_base + BN * D * 2;
  const uint32_t q_base = v_base + BN * D * 2;
  const uint32_t do_base = q_base + 2 * BM * D * 2;
  float* s_lse = reinterpret_cast<float*>(smem + (2 * BN + 4 * BM) * D * 2);
  float* s_dsum = s_lse + 2 * BM;
  int* s_vis = reinterpret_cast<int*>(s_dsum + 2 * BM);

  const Geometry g = p.g;
  const int b = blockIdx.x / g.kv_heads, kv_head = blockIdx.x % g.kv_heads;
  const int n0 = blockIdx.y * BN;
  const int limit = g.kv_limit(b);
  const int first_tile = blockIdx.z * p.split_tiles;
  const int q_tiles = min((g.rows + BM - 1) / BM, first_tile + p.split_tiles);
  const long long stat_base = (static_cast<long long>(b) * g.q_heads + kv_head * g.group) * g.q_len;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int gq = lane >> 2, tq = lane & 3;

  auto tile_range = [&](int t, int& lo, int& hi) {
    const int begin = t * BM;
    g.visible_range(begin, min(begin + BM, g.rows), limit, lo, hi);
  };
  auto next_needed = [&](int t) {
    for (; t < q_tiles; ++t) {
      int lo, hi;
      tile_range(t, lo, hi);
      if (hi > n0) break;
    }
    return t;
  };

  float dk[D / 8][4], dv[D / 8][4];
#pragma unroll
  for (int n = 0; n < D / 8; ++n)
#pragma unroll
    for (int e = 0; e < 4; ++e) dk[n][e] = dv[n][e] = 0.0f;

  const T* q = static_cast<const T*>(p.q);
  const T* dout = static_cast<const T*>(p.dout);
  auto load_rows = [&](int t, int stage) {
    const int begin = t * BM;
    load_tile<D, BM, THREADS, T>(q_base + stage * BM * D * 2, q, [&](int i) -> const T* {
      const int r = begin + i;
      return r < g.rows ? row_of(q, p.qs.b, p.qs.h, p.qs.s, g, b, kv_head, r) : nullptr;
    });
    load_tile<D, BM, THREADS, T>(do_base + stage * BM * D * 2, dout, [&](int i) -> const T* {
      const int r = begin + i;
      return r < g.rows ? row_of(dout, p.dos.b, p.dos.h, p.dos.s, g, b, kv_head, r) : nullptr;
    });
    for (int i = threadIdx.x; i < BM; i += THREADS) {
      const int r = begin + i;
      const bool valid = r < g.rows;
      // Rows past the end: lse₂ = +inf makes their probabilities exactly zero.
      s_lse[stage * BM + i] = valid ? p.lse2[stat_base + r] : INFINITY;
      s_dsum[stage * BM + i] = valid ? p.dsum[stat_base + r] : 0.0f;
      s_vis[stage * BM + i] = valid ? g.visible(r % g.q_len, limit) : 0;
    }
  };

  int t = next_needed(first_tile);
  if (t < q_tiles) {
    const T* k = static_cast<const T*>(p.k) + b * p.ks.b + kv_head * p.ks.h;
    const T* v = static_cast<const T*>(p.v) + b * p.vs.b + kv_head * p.vs.h;
    load_tile<D, BN, THREADS, T>(
        k_base, k, [&](int i) -> const T* { return n0 + i < limit ? k + (n0 + i) * p.ks.s : nullptr; });
    load_tile<D, BN, THREADS, T>(
        v_base, v, [&](int i) -> const T* { return n0 + i < limit ? v + (n0 + i) * p.vs.s : nullptr; });
    load_rows(t, 0);
    cp_async_commit();
  }
  int stage = 0;
  while (t < q_tiles) {
    const int next = next_needed(t + 1);
    if (next < q_tiles) load_rows(next, stage ^ 1);
    cp_async_commit();
    cp_async_wait<1>();
    __syncthreads();
    const uint32_t qs = q_base + stage * BM * D * 2, dos = do_base + stage * BM * D * 2;

    float st[BM / 8][4], dpt[BM / 8][4];
#pragma unroll
    for (int n = 0; n < BM / 8; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) st[n][e] = dpt[n][e] = 0.0f;
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
      uint32_t ka[4], va[4];
      ldmatrix_x4(ka, a_address<D>(k_base, warp * 16, kk, lane));
      ldmatrix_x4(va, a_address<D>(v_base, warp * 16, kk, lane));
#pragma unroll
      for (int np = 0; np < BM / 16; ++np) {
        uint32_t qb[4], ob[4];
        ldmatrix_x4(qb, bt_address<D>(qs, np * 16, kk, lane));
        mma_16816<T>(st[2 * np], ka, qb[0], qb[1]);
        mma_16816<T>(st[2 * np + 1], ka, qb[2], qb[3]);
        ldmatrix_x4(ob, bt_address<D>(dos, np * 16, kk, lane));
        mma_16816<T>(dpt[2 * np], va, ob[0], ob[1]);
        mma_16816<T>(dpt[2 * np + 1], va, ob[2], ob[3]);
      }
    }

    int lo, hi;
    tile_range(t, lo, hi);
    const bool masked = lo < n0 + BN;
    const float* lse_t = s_lse + stage * BM;
    const float* dsum_t = s_dsum + stage * BM;
    const int* vis_t = s_vis + stage * BM;
#pragma unroll
    for (int n = 0; n < BM / 8; ++n) {
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const int c = n * 8 + 2 * tq + e;
        const float row_lse = lse_t[c], row_dsum = dsum_t[c];
        const int row_vis = vis_t[c];
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const int j = n0 + warp * 16 + gq + 8 * h;
          float prob = exp2f(st[n][2 * h + e] * p.scale_log2 - row_lse);
          if (masked && j >= row_vis) prob = 0.0f;
          st[n][2 * h + e] = prob;
          dpt[n][2 * h + e] = prob * (dpt[n][2 * h + e] - row_dsum);
        }
      }
    }

#pragma unroll
    for (int kk = 0; kk < BM / 16; ++kk) {
      uint32_t pa[4], sa[4];
      accumulator_as_a<T>(pa, st[2 * kk], st[2 * kk + 1]);
      accumulator_as_a<T>(sa, dpt[2 * kk], dpt[2 * kk + 1]);
#pragma unroll
      for (int dp = 0; dp < D / 16; ++dp) {
        uint32_t ob[4], qb[4];
        ldmatrix_x4_trans(ob, b_address<D>(dos, kk, dp * 16, lane));
        mma_16816<T>(dv[2 * dp], pa, ob[0], ob[1]);
        mma_16816<T>(dv[2 * dp + 1], pa, ob[2], ob[3]);
        ldmatrix_x4_trans(qb, b_address<D>(qs, kk, dp * 16, lane));
        mma_16816<T>(dk[2 * dp], sa, qb[0], qb[1]);
        mma_16816<T>(dk[2 * dp + 1], sa, qb[2], qb[3]);
      }
    }
    __syncthreads();  // this stage is refilled by the next iteration's load
    t = next;
    stage ^= 1;
  }

  if (p.part_dk) {  // this split's share, summed by flash_backward_reduce_kernel
    const long long part = (static_cast<long long>(blockIdx.z) * gridDim.x + blockIdx.x) * g.kv_len;
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int j = n0 + warp * 16 + gq + 8 * h;
      if (j >= g.kv_len) continue;
      float* k_row = p.part_dk + (part + j) * D;
      float* v_row = p.part_dv + (part + j) * D;
#pragma unroll
      for (int n = 0; n < D / 8; ++n) {
        *reinterpret_cast<float2*>(k_row + n * 8 + 2 * tq) =
            make_float2(dk[n][2 * h] * p.scale, dk[n][2 * h + 1] * p.scale);
        *reinterpret_cast<float2*>(v_row + n * 8 + 2 * tq) = make_float2(dv[n][2 * h], dv[n][2 * h + 1]);
      }
    }
    return;
  }
  T* dk_out = static_cast<T*>(p.dk) + b * p.dks.b + kv_head * p.dks.h;
  T* dv_out = static_cast<T*>(p.dv) + b * p.dvs.b + kv_head * p.dvs.h;
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int j = n0 + warp * 16 + gq + 8 * h;
    if (j >= g.kv_len) continue;
    T* k_row = dk_out + j * p.dks.s;
    T* v_row = dv_out + j * p.dvs.s;
#pragma unroll
    for (int n = 0; n < D / 8; ++n) {
      store2<T>(k_row + n * 8 + 2 * tq, dk[n][2 * h] * p.scale, dk[n][2 * h + 1] * p.scale);
      store2<T>(v_row + n * 8 + 2 * tq, dv[n][2 * h], dv[n][2 * h + 1]);
    }
  }
}

// dK and dV from the splits' partial sums, added in order of the split: one thread per pair of elements.
template <typename T, int D>
__global__ void flash_backward_reduce_kernel(const BackwardParams p, int splits, long long pairs) {
  const long long per_split = static_cast<long long>(p.g.batch) * p.g.kv_heads * p.g.kv_len * D;
  for (long long i = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; i < pairs;
       i += static_cast<long long>(gridDim.x) * blockDim.x) {
    const long long e = 2 * i;
    const int d = static_cast<int>(e % D);
    const long long row = e / D;  // (b·kv_heads + kv_head)·kv_len + j
    const int j = static_cast<int>(row % p.g.kv_len);
    const int bh = static_cast<int>(row / p.g.kv_len), b = bh / p.g.kv_heads, kv_head = bh % p.g.kv_heads;
    float2 k_sum = make_float2(0.0f, 0.0f), v_sum = make_float2(0.0f, 0.0f);
    for (int z = 0; z < splits; ++z) {
      const float2 kz = *reinterpret_cast<const float2*>(p.part_dk + z * per_split + e);
      const float2 vz = *reinterpret_cast<const float2*>(p.part_dv + z * per_split + e);
      k_sum.x += kz.x, k_sum.y += kz.y, v_sum.x += vz.x, v_sum.y += vz.y;
    }
    store2<T>(static_cast<T*>(p.dk) + b * p.dks.b + kv_head * p.dks.h + j * p.dks.s + d, k_sum.x, k_sum.y);
    store2<T>(static_cast<T*>(p.dv) + b * p.dvs.b + kv_head * p.dvs.h + j * p.dvs.s + d, v_sum.x, v_sum.y);
  }
}

template <typename T, int D, int WARPS, int BN>
__global__ void __launch_bounds__(WARPS * 32) flash_backward_dq_kernel(const BackwardParams p) {
  constexpr int BM = 16 * WARPS, THREADS = WARPS * 32;
  extern __shared__ __align__(128) unsigned char smem[];
  // Q [BM][D], dO [BM][D], K [2][BN][D], V [2][BN][D].
  const uint32_t q_base = smem_address(smem);
  const uint32_t do_base = q_base + BM * D * 2;
  const uint32_t k_base = do_base + BM * D * 2;
  const uint32_t v_base = k_base + 2 * BN * D * 2;

  const Geometry g = p.g;
  const int b = blockIdx.x / g.kv_heads, kv_head = blockIdx.x % g.kv_heads;
  const int r0 = (gridDim.y - 1 - blockIdx.y) * BM;  // the longest causal rows first
  const int r_end = min(r0 + BM, g.rows);
  const int limit = g.kv_limit(b);
  int lo, hi;
  g.visible_range(r0, r_end, limit, lo, hi);
  const int n_tiles = (hi + BN - 1) / BN;
  const long long stat_base = (static_cast<long long>(b) * g.q_heads + kv_head * g.group) * g.q_len;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int gq = lane >> 2, tq = lane & 3;
  int row[2], vis[2];
  float row_lse[2], row_dsum[2];
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    row[h] = r0 + warp * 16 + gq + 8 * h;
    const bool valid = row[h] < g.rows;
    vis[h] = valid ? g.visible(row[h] % g.q_len, limit) : 0;
    row_lse[h] = valid ? p.lse2[stat_base + row[h]] : INFINITY;
    row_dsum[h] = valid ? p.dsum[stat_base + row[h]] : 0.0f;
  }

  float dq[D / 8][4];
#pragma unroll
  for (int n = 0; n < D / 8; ++n) dq[n][0] = dq[n][1] = dq[n][2] = dq[n][3] = 0.0f;

  if (n_tiles > 0) {
    const T* q = static_cast<const T*>(p.q);
    const T* dout = static_cast<const T*>(p.dout);
    const T* k = static_cast<const T*>(p.k) + b * p.ks.b + kv_head * p.ks.h;
    const T* v = static_cast<const T*>(p.v) + b * p.vs.b + kv_head * p.vs.h;
    load_tile<D, BM, THREADS, T>(q_base, q, [&](int i) -> const T* {
      const int r = r0 + i;
      return r < g.rows ? row_of(q, p.qs.b, p.qs.h, p.qs.s, g, b, kv_head, r) : nullptr;
    });
    load_tile<D, BM, THREADS, T>(do_base, dout, [&](int i) -> const T* {
      const int r = r0 + i;
      return r < g.rows ? row_of(dout, p.dos.b, p.dos.h, p.dos.s, g, b, kv_head, r) : nullptr;
    });
    auto load_kv = [&](int t, int stage) {
      const int j0 = t * BN;
      load_tile<D, BN, THREADS, T>(k_base + stage * BN * D * 2, k, [&](int i) -> const T* {
        return j0 + i < limit ? k + (j0 + i) * p.ks.s : nullptr;
      });
      load_tile<D, BN, THREADS, T>(v_base + stage * BN * D * 2, v, [&](int i) -> const T* {
        return j0 + i < limit ? v + (j0 + i) * p.vs.s : nullptr;
      });
    };
    load_kv(0, 0);
    cp_async_commit();

    for (int t = 0; t < n_tiles; ++t) {
      const int stage = t & 1;
      if (t + 1 < n_tiles) load_kv(t + 1, stage ^ 1);
      cp_async_commit();
      cp_async_wait<1>();
      __syncthreads();
      const uint32_t ks = k_base + stage * BN * D * 2, vs = v_base + stage * BN * D * 2;

      float s[BN / 8][4], dp[BN / 8][4];
#pragma unroll
      for (int n = 0; n < BN / 8; ++n)
#pragma unroll
        for (int e = 0; e < 4; ++e) s[n][e] = dp[n][e] = 0.0f;
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk) {
        uint32_t qa[4], oa[4];
        ldmatrix_x4(qa, a_address<D>(q_base, warp * 16, kk, lane));
        ldmatrix_x4(oa, a_address<D>(do_base, warp * 16, kk, lane));
#pragma unroll
        for (int np = 0; np < BN / 16; ++np) {
          uint32_t kb[4], vb[4];
          ldmatrix_x4(kb, bt_address<D>(ks, np * 16, kk, lane));
          mma_16816<T>(s[2 * np], qa, kb[0], kb[1]);
          mma_16816<T>(s[2 * np + 1], qa, kb[2], kb[3]);
          ldmatrix_x4(vb, bt_address<D>(vs, np * 16, kk, lane));
          mma_16816<T>(dp[2 * np], oa, vb[0], vb[1]);
          mma_16816<T>(dp[2 * np + 1], oa, vb[2], vb[3]);
        }
      }

      const int j0 = t * BN;
      const bool masked = j0 + BN > lo;
#pragma unroll
      for (int n = 0; n < BN / 8; ++n) {
#pragma unroll
        for (int h = 0; h < 2; ++h) {
#pragma unroll
          for (int e = 0; e < 2; ++e) {
            const int j = j0 + n * 8 + 2 * tq + e;
            float prob = exp2f(s[n][2 * h + e] * p.scale_log2 - row_lse[h]);
            if (masked && j >= vis[h]) prob = 0.0f;
            dp[n][2 * h + e] = prob * (dp[n][2 * h + e] - row_dsum[h]);
          }
        }
      }

#pragma unroll
      for (int kk = 0; kk < BN / 16; ++kk) {
        uint32_t sa[4];
        accumulator_as_a<T>(sa, dp[2 * kk], dp[2 * kk + 1]);
#pragma unroll
        for (int dd = 0; dd < D / 16; ++dd) {
          uint32_t kb[4];
          ldmatrix_x4_trans(kb, b_address<D>(ks, kk, dd * 16, lane));
          mma_16816<T>(dq[2 * dd], sa, kb[0], kb[1]);
          mma_16816<T>(dq[2 * dd + 1], sa, kb[2], kb[3]);
        }
      }
      __syncthreads();  // this stage is refilled by the next iteration's load
    }
  }

#pragma unroll
  for (int h = 0; h < 2; ++h) {
    if (row[h] >= g.rows) continue;
    T* dst = row_of(static_cast<T*>(p.dq), p.dqs.b, p.dqs.h, p.dqs.s, g, b, kv_head, row[h]);
#pragma unroll
    for (int n = 0; n < D / 8; ++n)
      store2<T>(dst + n * 8 + 2 * tq, dq[n][2 * h] * p.scale, dq[n][2 * h + 1] * p.scale);
  }
}

// Tiles: dK/dV blocks of 16·KW keys against 64 (head_dim 64) or 32 (128) query rows a step, keeping the
// accumulators in registers; dQ blocks of 16·QW query rows against 64 keys a step.
template <int D>
constexpr int kdkdv_query_tile = D == 64 ? 64 : 32;
constexpr int kDqKeyTile = 64;

// Splits of the dK/dV pass: where its key blocks are fewer than two per multiprocessor (a few key/value
// heads, as with grouped queries), the query rows are split so that about eight blocks per multiprocessor
// run, at most 8 ways; otherwise the partial sums' extra pass costs more than it gains.
// WICK_FLASH_BWD_SPLITS=n forces n (1: no split), for measurements.
int dkdv_splits(int64_t key_blocks, int64_t query_tiles, int device) {
  const char* forced = std::getenv("WICK_FLASH_BWD_SPLITS");
  int64_t splits = 0;
  if (forced != nullptr && *forced) {
    splits = std::atoll(forced);
    if (splits < 1) raise("attention_backward", "WICK_FLASH_BWD_SPLITS must be a positive count");
  } else {
    int sms = 0;
    check(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device), "attention_backward",
          "cudaDeviceGetAttribute");
    sms = std::max(sms, 1);
    splits = key_blocks >= 2 * int64_t{sms}
                 ? 1
                 : std::min<int64_t>(8, ceil_div(8 * int64_t{sms}, std::max<int64_t>(key_blocks, 1)));
  }
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>({splits, query_tiles, 65535})));
}

template <typename T, int D, int KW, int QW>
void launch_backward(BackwardParams p, int64_t batch_heads, int64_t kv_len, cudaStream_t stream, int device) {
  {
    constexpr int BM = kdkdv_query_tile<D>, BN = 16 * KW;
    constexpr int bytes = (2 * BN + 4 * BM) * D * 2 + 2 * BM * 12;
    static std::atomic<uint64_t> configured{0};
    allow_shared_memory(flash_backward_dkdv_kernel<T, D, KW, BM>, bytes, device, configured,
                        "attention_backward");
    const int64_t key_blocks = batch_heads * ceil_div(kv_len, BN), query_tiles = ceil_div(p.g.rows, BM);
    const int splits = dkdv_splits(key_blocks, query_tiles, device);
    p.split_tiles = static_cast<int>(ceil_div(query_tiles, splits));
    Tensor partials;
    if (splits > 1) {
      const int64_t per_split = batch_heads * kv_len * D;
      partials = Tensor::empty({2, splits, per_split}, DType::f32, Device::cuda(device));
      p.part_dk = static_cast<float*>(partials.data_ptr());
      p.part_dv = p.part_dk + splits * per_split;
    }
    const dim3 grid(static_cast<unsigned>(batch_heads), static_cast<unsigned>(ceil_div(kv_len, BN)),
                    static_cast<unsigned>(splits));
    if (kv_len > 0) flash_backward_dkdv_kernel<T, D, KW, BM><<<grid, KW * 32, bytes, stream>>>(p);
    check_launch("attention_backward");
    if (splits > 1 && kv_len > 0) {
      const int64_t pairs = batch_heads * kv_len * D / 2;
      flash_backward_reduce_kernel<T, D>
          <<<static_cast<unsigned>(std::min<int64_t>(ceil_div(pairs, 256), 65535)), 256, 0, stream>>>(
              p, splits, pairs);
      check_launch("attention_backward");
    }
    p.part_dk = p.part_dv = nullptr;
  }
  {
    constexpr int BM = 16 * QW, BN = kDqKeyTile;
    constexpr int bytes = (2 * BM + 4 * BN) * D * 2;
    static std::atomic<uint64_t> configured{0};
    allow_shared_memory(flash_backward_dq_kernel<T, D, QW, BN>, bytes, device, configured,
                        "attention_backward");
    const dim3 grid(static_cast<unsigned>(batch_heads), static_cast<unsigned>(ceil_div(p.g.rows, BM)));
    flash_backward_dq_kernel<T, D, QW, BN><<<grid, QW * 32, bytes, stream>>>(p);
    check_launch("attention_backward");
  }
}

// WICK_FLASH_BWD_TILE=k<dK/dV warps>q<dQ warps> overrides the built-in choice, for measurements.
template <typename T, int D>
void launch_backward_tile(const BackwardParams& p, int64_t batch_heads, int64_t kv_len, cudaStream_t stream,
                          int device) {
  const char* forced = std::getenv("WICK_FLASH_BWD_TILE");
  const std::string tile = forced != nullptr && *forced ? forced : "k4q4";
  if (tile == "k4q4") return launch_backward<T, D, 4, 4>(p, batch_heads, kv_len, stream, device);
  if (tile == "k8q4") return launch_backward<T, D, 8, 4>(p, batch_heads, kv_len, stream, device);
  if (tile == "k4q8") return launch_backward<T, D, 4, 8>(p, batch_heads, kv_len, stream, device);
  if (tile == "k8q8") return launch_backward<T, D, 8, 8>(p, batch_heads, kv_len, stream, device);
  raise("attention_backward",
        "unknown flash backward tile '" + tile + "' (expected k4q4, k8q4, k4q8 or k8q8)");
}

Strides strides_of(const Tensor& t) {
  return {t.stride(0), t.stride(1), t.stride(2)};
}

}  // namespace

bool flash_attention_backward_applies(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                                      const Tensor& lse, const Tensor& dout) {
  // Grid rows: key blocks of 64 and query blocks of 64 (the smallest tiles) each fit the 65535 limit.
  if (ceil_div(k.size(2), 64) > 65535 || q.size(3) == 32) return false;  // head_dim 32: forward only
  return flash_attention_applies(FlashKind::prefill, q, k, v) && flash_layout_supported(out, q) &&
         flash_layout_supported(dout, q) && lse.dtype() == DType::f32 && lse.device() == q.device();
}

void flash_attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                              const Tensor& lse, const Tensor& dout, const ops::AttentionOptions& options,
                              const Tensor& dq, const Tensor& dk, const Tensor& dv) {
  const int64_t batch = q.size(0), q_heads = q.size(1), q_len = q.size(2), kv_heads = k.size(1),
                kv_len = k.size(2), d = q.size(3);
  if (batch == 0 || q_heads == 0) return;
  DeviceGuard guard(q.device().index);
  const int device = q.device().index;
  const cudaStream_t stream = stream_of(q);
  if (q_len == 0) {
    // No query sees any key: the key and value gradients are zero.
    if (kv_len > 0) {
      cuda::fill(dk, 0.0);
      cuda::fill(dv, 0.0);
    }
    return;
  }
  const Tensor lengths =
      options.kv_lengths.defined() ? options.kv_lengths.to(DType::i64).contiguous() : Tensor();
  const Tensor lse_rows = lse.contiguous();
  const int64_t total_rows = batch * q_heads * q_len;
  const Tensor scratch = Tensor::empty({2, total_rows}, DType::f32, q.device());

  BackwardParams p{};
  p.q = q.data_ptr();
  p.k = k.data_ptr();
  p.v = v.data_ptr();
  p.dout = dout.data_ptr();
  p.dq = dq.data_ptr();
  p.dk = dk.data_ptr();
  p.dv = dv.data_ptr();
  float* lse2 = static_cast<float*>(scratch.data_ptr());
  float* dsum = lse2 + total_rows;
  p.lse2 = lse2;
  p.dsum = dsum;
  p.qs = strides_of(q);
  p.ks = strides_of(k);
  p.vs = strides_of(v);
  p.dos = strides_of(dout);
  p.dqs = strides_of(dq);
  p.dks = strides_of(dk);
  p.dvs = strides_of(dv);
  p.g.batch = static_cast<int>(batch);
  p.g.q_heads = static_cast<int>(q_heads);
  p.g.kv_heads = static_cast<int>(kv_heads);
  p.g.group = static_cast<int>(q_heads / kv_heads);
  p.g.q_len = static_cast<int>(q_len);
  p.g.kv_len = static_cast<int>(kv_len);
  p.g.rows = static_cast<int>(p.g.group * q_len);
  p.g.query_offset = options.query_offset >= 0 ? options.query_offset : kv_len - q_len;
  p.g.causal = options.causal;
  p.g.kv_lengths = lengths.defined() ? static_cast<const int64_t*>(lengths.data_ptr()) : nullptr;
  const double scale = std::isnan(options.scale) ? 1.0 / std::sqrt(static_cast<double>(d)) : options.scale;
  p.scale = static_cast<float>(scale);
  p.scale_log2 = static_cast<float>(scale * 1.4426950408889634);

  const Strides os = strides_of(out);
  const unsigned prepare_blocks = static_cast<unsigned>(ceil_div(total_rows, 8));
  auto run = [&](auto tag, auto head_dim) {
    using T = decltype(tag);
    constexpr int D = decltype(head_dim)::value;
    flash_backward_prepare_kernel<T, D><<<prepare_blocks, 256, 0, stream>>>(
        static_cast<const T*>(out.data_ptr()), static_cast<const T*>(dout.data_ptr()),
        static_cast<const float*>(lse_rows.data_ptr()), os, p.dos, lse2, dsum, total_rows, p.g.q_heads,
        p.g.q_len);
    check_launch("attention_backward");
    launch_backward_tile<T, D>(p, batch * kv_heads, kv_len, stream, device);
  };
  auto with_dim = [&](auto tag) {
    if (d == 64)
      run(tag, std::integral_constant<int, 64>{});
    else
      run(tag, std::integral_constant<int, 128>{});
  };
  if (q.dtype() == DType::bf16)
    with_dim(__nv_bfloat16{});
  else
    with_dim(__half{});
}

}  // namespace wick::cuda
