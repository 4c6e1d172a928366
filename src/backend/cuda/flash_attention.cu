// Flash attention forward on the tensor cores (FlashAttention-2 scheme): a block owns BM = 16·WARPS packed
// query rows of one key/value head (flash_attention.cuh), each warp 16 of them with its Q fragments in
// registers; key/value tiles of BN rows stream through shared memory by cp.async, two stages deep. Per tile,
// S = Q·Kᵀ (mma.sync m16n8k16, f32 accumulators), masks, the online softmax in base 2 (running max and sum
// per row), and O += P·V with P re-used from the accumulators as bf16/f16 A operands. The S×T scores never
// leave registers; the f32 log-sum-exp of each row is written for the backward.
//
// Decode (flash-decoding): when the rows and batch leave most of the chip idle, the key range is split across
// blocks; each split writes its normalized partial output and log-sum-exp in f32, and a combine kernel weighs
// the splits by exp(lse_split − lse).
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <iterator>
#include <string>
#include <string_view>

#include "backend/cuda/flash_attention.cuh"
#include "backend/cuda/kernels.h"

namespace wick::cuda {
namespace {

using namespace flash;

template <typename T, int D, int WARPS, int MT, int BN>
__global__ void __launch_bounds__(WARPS * 32) flash_forward_kernel(const ForwardParams p) {
  // Each warp owns MT 16-row m-tiles: every K/V fragment read from shared memory feeds MT products. With one
  // m-tile the Q fragments stay in registers; with more they are re-read per k-step (registers go to O).
  constexpr int BM = 16 * MT * WARPS, THREADS = WARPS * 32;
  constexpr bool kQInRegisters = MT == 1;
  extern __shared__ __align__(128) unsigned char smem[];
  T* sq = reinterpret_cast<T*>(smem);  // [BM][D], then K [2][BN][D], then V [2][BN][D]
  const uint32_t q_base = smem_address(sq);
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

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int gq = lane >> 2, tq = lane & 3;
  int row[MT][2], vis[MT][2];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      row[mt][h] = r0 + (warp * MT + mt) * 16 + gq + 8 * h;
      vis[mt][h] = row[mt][h] < g.rows ? g.visible(row[mt][h] % g.q_len, limit) : limit;
    }
  }

  float o[MT][D / 8][4];
  float m[MT][2], l[MT][2];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
    for (int n = 0; n < D / 8; ++n) o[mt][n][0] = o[mt][n][1] = o[mt][n][2] = o[mt][n][3] = 0.0f;
    m[mt][0] = m[mt][1] = -INFINITY;
    l[mt][0] = l[mt][1] = 0.0f;
  }

  if (t_begin < t_end) {
    const T* q = static_cast<const T*>(p.q);
    const T* k = static_cast<const T*>(p.k) + b * p.ks.b + kv_head * p.ks.h;
    const T* v = static_cast<const T*>(p.v) + b * p.vs.b + kv_head * p.vs.h;
    load_tile<D, BM, THREADS, T>(q_base, q, [&](int i) -> const T* {
      const int r = r0 + i;
      return r < g.rows ? row_of(q, p.qs.b, p.qs.h, p.qs.s, g, b, kv_head, r) : nullptr;
    });
    auto load_kv = [&](int t, int stage) {
      const int n0 = t * BN;
      load_tile<D, BN, THREADS, T>(k_base + stage * BN * D * 2, k, [&](int i) -> const T* {
        return n0 + i < limit ? k + (n0 + i) * p.ks.s : nullptr;
      });
      load_tile<D, BN, THREADS, T>(v_base + stage * BN * D * 2, v, [&](int i) -> const T* {
        return n0 + i < limit ? v + (n0 + i) * p.vs.s : nullptr;
      });
    };
    load_kv(t_begin, 0);
    cp_async_commit();
    cp_async_wait<0>();
    __syncthreads();
    uint32_t qa[kQInRegisters ? D / 16 : 1][4];
    if constexpr (kQInRegisters) {
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk) ldmatrix_x4(qa[kk], a_address<D>(q_base, warp * 16, kk, lane));
    }

    for (int t = t_begin; t < t_end; ++t) {
      const int stage = (t - t_begin) & 1;
      if (t + 1 < t_end) load_kv(t + 1, stage ^ 1);
      cp_async_commit();
      cp_async_wait<1>();
      __syncthreads();
      const uint32_t ks = k_base + stage * BN * D * 2, vs = v_base + stage * BN * D * 2;

      float s[MT][BN / 8][4];
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int n = 0; n < BN / 8; ++n) s[mt][n][0] = s[mt][n][1] = s[mt][n][2] = s[mt][n][3] = 0.0f;
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk) {
        uint32_t a[MT][4];
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
          if constexpr (kQInRegisters) {
#pragma unroll
            for (int e = 0; e < 4; ++e) a[mt][e] = qa[kk][e];
          } else {
            ldmatrix_x4(a[mt], a_address<D>(q_base, (warp * MT + mt) * 16, kk, lane));
          }
        }
#pragma unroll
        for (int np = 0; np < BN / 16; ++np) {
          uint32_t kb[4];
          ldmatrix_x4(kb, bt_address<D>(ks, np * 16, kk, lane));
#pragma unroll
          for (int mt = 0; mt < MT; ++mt) {
            mma_16816<T>(s[mt][2 * np], a[mt], kb[0], kb[1]);
            mma_16816<T>(s[mt][2 * np + 1], a[mt], kb[2], kb[3]);
          }
        }
      }

      const int n0 = t * BN;
      const bool masked = n0 + BN > lo;
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          float mx = masked ? scale_scores<BN, true>(s[mt], h, p.scale_log2, n0 + 2 * tq, vis[mt][h])
                            : scale_scores<BN, false>(s[mt], h, p.scale_log2, n0 + 2 * tq, vis[mt][h]);
          mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
          mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
          const float m_new = fmaxf(m[mt][h], mx);
          const float m_use = m_new == -INFINITY ? 0.0f : m_new;
          const float correction = exp2_ftz(m[mt][h] - m_use);
          m[mt][h] = m_new;
          float sum = 0.0f;
#pragma unroll
          for (int n = 0; n < BN / 8; ++n) {
#pragma unroll
            for (int e = 0; e < 2; ++e) {
              const float x = exp2_ftz(s[mt][n][2 * h + e] - m_use);
              s[mt][n][2 * h + e] = x;
              sum += x;
            }
          }
          l[mt][h] = l[mt][h] * correction + sum;
#pragma unroll
          for (int n = 0; n < D / 8; ++n) {
            o[mt][n][2 * h] *= correction;
            o[mt][n][2 * h + 1] *= correction;
          }
        }
      }

#pragma unroll
      for (int kk = 0; kk < BN / 16; ++kk) {
        uint32_t pa[MT][4];
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) accumulator_as_a<T>(pa[mt], s[mt][2 * kk], s[mt][2 * kk + 1]);
#pragma unroll
        for (int dp = 0; dp < D / 16; ++dp) {
          uint32_t vb[4];
          ldmatrix_x4_trans(vb, b_address<D>(vs, kk, dp * 16, lane));
#pragma unroll
          for (int mt = 0; mt < MT; ++mt) {
            mma_16816<T>(o[mt][2 * dp], pa[mt], vb[0], vb[1]);
            mma_16816<T>(o[mt][2 * dp + 1], pa[mt], vb[2], vb[3]);
          }
        }
      }
      __syncthreads();  // this stage is refilled by the next iteration's load
    }
  }

  const long long stat_base = (static_cast<long long>(b) * g.q_heads + kv_head * g.group) * g.q_len;
#pragma unroll
  for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      float sum = l[mt][h];
      sum += __shfl_xor_sync(0xffffffffu, sum, 1);
      sum += __shfl_xor_sync(0xffffffffu, sum, 2);
      const int r = row[mt][h];
      if (r >= g.rows) continue;
      const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
      const float row_lse = sum > 0.0f ? (m[mt][h] + log2f(sum)) * 0.69314718055994531f : -INFINITY;
      const long long stat = stat_base + r;
      if (p.part_out) {
        const long long at = blockIdx.z * p.total_rows + stat;
        float* dst = p.part_out + at * D;
#pragma unroll
        for (int n = 0; n < D / 8; ++n)
          *reinterpret_cast<float2*>(dst + n * 8 + 2 * tq) =
              make_float2(o[mt][n][2 * h] * inv, o[mt][n][2 * h + 1] * inv);
        if (tq == 0) p.part_lse[at] = row_lse;
      } else {
        T* dst = row_of(static_cast<T*>(p.out), p.os.b, p.os.h, p.os.s, g, b, kv_head, r);
#pragma unroll
        for (int n = 0; n < D / 8; ++n)
          store2<T>(dst + n * 8 + 2 * tq, o[mt][n][2 * h] * inv, o[mt][n][2 * h + 1] * inv);
        if (tq == 0) p.lse[stat] = row_lse;
      }
    }
  }
}

// One block of 128 threads per row: out = Σ_s exp(lse_s − lse)·out_s, lse = log Σ_s exp(lse_s). The splits
// are spread over the threads (D/2 column pairs × 256/D split groups) so their loads are in flight together.
constexpr int kCombineThreads = 128;

template <typename T, int D>
__global__ void __launch_bounds__(kCombineThreads)
    flash_combine_kernel(const float* part_out, const float* part_lse, T* out, float* lse, int splits,
                         long long total_rows, Strides os, int q_heads, int q_len) {
  constexpr int pairs = D / 2, groups = kCombineThreads / pairs;
  __shared__ float2 partial[kCombineThreads];
  const long long r = blockIdx.x;
  float mx = -INFINITY;
  for (int s = threadIdx.x; s < splits; s += kCombineThreads) mx = fmaxf(mx, part_lse[s * total_rows + r]);
  mx = block_max(mx);
  const long long i = r % q_len, head = (r / q_len) % q_heads,
                  b = r / (static_cast<long long>(q_len) * q_heads);
  const int pair = threadIdx.x % pairs, group = threadIdx.x / pairs;
  T* dst = out + b * os.b + head * os.h + i * os.s + 2 * pair;
  if (mx == -INFINITY) {
    if (group == 0) store2<T>(dst, 0.0f, 0.0f);
    if (threadIdx.x == 0) lse[r] = -INFINITY;
    return;
  }
  float sum = 0.0f;
  for (int s = threadIdx.x; s < splits; s += kCombineThreads)
    sum += __expf(part_lse[s * total_rows + r] - mx);
  sum = block_sum(sum);
  float a0 = 0.0f, a1 = 0.0f;
#pragma unroll 8
  for (int s = group; s < splits; s += groups) {
    const float w = __expf(part_lse[s * total_rows + r] - mx);
    const float2 x = *reinterpret_cast<const float2*>(part_out + (s * total_rows + r) * D + 2 * pair);
    a0 += w * x.x;
    a1 += w * x.y;
  }
  partial[threadIdx.x] = make_float2(a0, a1);
  __syncthreads();
  if (group != 0) return;
#pragma unroll
  for (int other = 1; other < groups; ++other) {
    a0 += partial[other * pairs + pair].x;
    a1 += partial[other * pairs + pair].y;
  }
  store2<T>(dst, a0 / sum, a1 / sum);
  if (threadIdx.x == 0) lse[r] = mx + logf(sum);
}

template <typename T, int D, int WARPS, int MT, int BN>
void launch_forward(const ForwardParams& p, dim3 grid, cudaStream_t stream, int device) {
  constexpr int bytes = (16 * MT * WARPS + 4 * BN) * D * 2;
  static std::atomic<uint64_t> configured{0};
  allow_shared_memory(flash_forward_kernel<T, D, WARPS, MT, BN>, bytes, device, configured, "attention");
  flash_forward_kernel<T, D, WARPS, MT, BN><<<grid, WARPS * 32, bytes, stream>>>(p);
}

// The forward tiles: warps per block, 16-row m-tiles per warp, keys per tile.
struct ForwardTile {
  std::string_view name;
  int warps, m_tiles, block_n;
};
constexpr ForwardTile kForwardTiles[] = {
    {"w1", 1, 1, 64},      {"w4", 4, 1, 64},    {"w8", 8, 1, 64},     {"w4m2", 4, 2, 64},
    {"w4m2n32", 4, 2, 32}, {"wgmma", 8, 1, 64}, {"wgmma2", 8, 1, 64},
};
constexpr int kWgmmaTile = 5;  // this and the next: Hopper (flash_attention_sm90.cu)

template <typename T, int D>
void launch_forward_tile(int tile, const ForwardParams& p, dim3 grid, cudaStream_t stream, int device) {
  switch (tile) {
    case 0:
      return launch_forward<T, D, 1, 1, 64>(p, grid, stream, device);
    case 1:
      return launch_forward<T, D, 4, 1, 64>(p, grid, stream, device);
    case 2:
      return launch_forward<T, D, 8, 1, 64>(p, grid, stream, device);
    case 3:
      return launch_forward<T, D, 4, 2, 64>(p, grid, stream, device);
    case 4:
      return launch_forward<T, D, 4, 2, 32>(p, grid, stream, device);
    default:
      return launch_sm90_forward(std::is_same_v<T, __nv_bfloat16>, D, tile == kWgmmaTile + 1, p, grid, stream,
                                 device);
  }
}

int find_tile(std::string_view name) {
  for (int i = 0; i < static_cast<int>(std::size(kForwardTiles)); ++i)
    if (kForwardTiles[i].name == name) return i;
  std::string names;
  for (const auto& t : kForwardTiles) names += (names.empty() ? "" : ", ") + std::string(t.name);
  raise("attention", "unknown flash tile '" + std::string(name) + "' (expected one of: " + names + ")");
}

// Decode: one warp when the packed rows fit one m-tile, else four. Prefill: wgmma on Hopper (two blocks a
// multiprocessor for head_dim 128), else two m-tiles
// a warp for head_dim 128 (K/V fragments reused, fewer keys a step to leave registers for O), one for 64; and
// 64-row blocks where 128-row blocks would not fill the multiprocessors.
int default_tile(FlashKind kind, int64_t rows, int64_t head_dim, int64_t heads, int device) {
  if (kind == FlashKind::decode) return rows <= 16 ? 0 : 1;
  // head_dim 32 (BERT-family encoders): 16-row blocks for sequences of at most 32 rows (embedding 100 × 32
  // tokens: 0.382 against 0.421 ms, H100), else 64.
  if (head_dim == 32) return rows <= 32 ? 0 : 1;
  if (ceil_div(rows, 128) * heads < multiprocessors(device)) return 1;
  if (sm90_forward_available(device)) return head_dim == 128 ? kWgmmaTile + 1 : kWgmmaTile;
  return head_dim == 128 ? 4 : 1;
}

Strides strides_of(const Tensor& t) {
  return {t.stride(0), t.stride(1), t.stride(2)};
}

// Rows of 16-byte-aligned 16-bit elements with a unit last stride: what cp.async and the vector stores need.
bool rows_aligned(const Tensor& t) {
  if (t.dim() != 4 || t.stride(3) != 1 || reinterpret_cast<uintptr_t>(t.data_ptr()) % 16 != 0) return false;
  for (int axis = 0; axis < 3; ++axis)
    if (t.size(axis) > 1 && t.stride(axis) % 8 != 0) return false;
  return true;
}

}  // namespace

bool flash_layout_supported(const Tensor& t, const Tensor& like) {
  return t.defined() && t.device() == like.device() && t.dtype() == like.dtype() && rows_aligned(t);
}

bool flash_attention_applies(FlashKind kind, const Tensor& q, const Tensor& k, const Tensor& v) {
  if (!q.device().is_cuda()) return false;
  if (q.dtype() != DType::bf16 && q.dtype() != DType::f16) return false;
  const int64_t d = q.size(3);
  if (d != 64 && d != 128 && !(d == 32 && kind == FlashKind::prefill)) return false;
  if (!flash_layout_supported(q, q) || !flash_layout_supported(k, q) || !flash_layout_supported(v, q))
    return false;
  const int64_t rows = q.size(1) / k.size(1) * q.size(2);
  if (rows > 64 * 65535 || k.size(2) > INT32_MAX / 2) return false;
  if (kind == FlashKind::decode) return q.size(2) <= 16 && rows <= 64;
  return true;
}

void flash_attention(FlashKind kind, const Tensor& q, const Tensor& k, const Tensor& v,
                     const ops::AttentionOptions& options, const Tensor& out, const Tensor& lse) {
  const int64_t batch = q.size(0), q_heads = q.size(1), q_len = q.size(2), kv_heads = k.size(1),
                kv_len = k.size(2), d = q.size(3);
  if (batch == 0 || q_len == 0 || q_heads == 0) return;
  DeviceGuard guard(q.device().index);
  const int device = q.device().index;
  const cudaStream_t stream = stream_of(q);
  const Tensor lengths =
      options.kv_lengths.defined() ? options.kv_lengths.to(DType::i64).contiguous() : Tensor();

  ForwardParams p{};
  p.q = q.data_ptr();
  p.k = k.data_ptr();
  p.v = v.data_ptr();
  p.out = out.data_ptr();
  p.lse = static_cast<float*>(lse.data_ptr());
  p.qs = strides_of(q);
  p.ks = strides_of(k);
  p.vs = strides_of(v);
  p.os = strides_of(out);
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
  p.scale_log2 = static_cast<float>(scale * 1.4426950408889634);
  p.total_rows = batch * q_heads * q_len;

  // WICK_FLASH_TILE=<name> (kForwardTiles) overrides the tile, for measurements.
  const char* forced = std::getenv("WICK_FLASH_TILE");
  const int tile = forced != nullptr && *forced ? find_tile(forced)
                                                : default_tile(kind, p.g.rows, d, batch * kv_heads, device);
  if (tile >= kWgmmaTile && !sm90_forward_available(device))
    raise("attention", "the wgmma flash tile needs an sm_90 device and sm_90a code in this build");
  if (tile >= kWgmmaTile && d == 32) raise("attention", "the wgmma flash tiles take head_dim 64 or 128");
  const ForwardTile& shape = kForwardTiles[tile];
  const int64_t block_rows = 16 * shape.warps * shape.m_tiles;
  const int64_t m_tiles = ceil_div(p.g.rows, block_rows);
  const int64_t kv_tiles = ceil_div(kv_len, shape.block_n);
  const int64_t blocks = m_tiles * batch * kv_heads;
  // Split the keys when the blocks would leave most multiprocessors idle: about four blocks per
  // multiprocessor, at least one key tile per split. A short cache (a few tiles) is not split: walking its
  // tiles costs less than the combine kernel that splitting needs.
  constexpr int64_t kUnsplitDecodeTiles = 4;
  int64_t splits = 1;
  const int sms = multiprocessors(device);
  if (kind == FlashKind::decode && blocks < sms && kv_tiles > kUnsplitDecodeTiles)
    splits = std::min<int64_t>(kv_tiles, ceil_div(4 * int64_t(sms), blocks));
  const int64_t tiles_per_split = std::max<int64_t>(1, ceil_div(kv_tiles, splits));
  splits = std::max<int64_t>(1, ceil_div(kv_tiles, tiles_per_split));
  p.tiles_per_split = static_cast<int>(splits == 1 ? std::max<int64_t>(kv_tiles, 1) : tiles_per_split);
  if (m_tiles > 65535 || splits > 65535 || batch * kv_heads > INT32_MAX)
    raise("attention", "flash attention grid too large");

  Tensor part_out, part_lse;
  if (splits > 1) {
    part_out = Tensor::empty({splits * p.total_rows * d}, DType::f32, q.device());
    part_lse = Tensor::empty({splits * p.total_rows}, DType::f32, q.device());
    p.part_out = static_cast<float*>(part_out.data_ptr());
    p.part_lse = static_cast<float*>(part_lse.data_ptr());
  }
  const dim3 grid(static_cast<unsigned>(batch * kv_heads), static_cast<unsigned>(m_tiles),
                  static_cast<unsigned>(splits));
  auto launch = [&](auto tag, auto head_dim) {
    using T = decltype(tag);
    constexpr int D = decltype(head_dim)::value;
    launch_forward_tile<T, D>(tile, p, grid, stream, device);
    check_launch("attention");
    if (splits > 1) {
      flash_combine_kernel<T, D><<<static_cast<unsigned>(p.total_rows), kCombineThreads, 0, stream>>>(
          p.part_out, p.part_lse, static_cast<T*>(p.out), p.lse, static_cast<int>(splits), p.total_rows, p.os,
          p.g.q_heads, p.g.q_len);
      check_launch("attention");
    }
  };
  auto with_dim = [&](auto tag) {
    if (d == 32)
      launch(tag, std::integral_constant<int, 32>{});
    else if (d == 64)
      launch(tag, std::integral_constant<int, 64>{});
    else
      launch(tag, std::integral_constant<int, 128>{});
  };
  if (q.dtype() == DType::bf16)
    with_dim(__nv_bfloat16{});
  else
    with_dim(__half{});
}

}  // namespace wick::cuda
