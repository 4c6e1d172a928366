// Fused decode steps on the decode GEMV (gemv.cuh), all reading their weight matrix before the previous
// kernel ends: the residual update out += x·wᵀ (+ bias); with an RMSNorm prologue, the linear layer; its
// SwiGLU form (one warp reads the gate row and the up row of an output column together); and the q/k/v
// projection whose epilogue rotates each (i, i + d/2) pair of a q or k head and writes q, and k and v into
// the caches (one warp reads both rows of a pair). Also the rotation and cache writes alone, one kernel for
// the packed q/k/v rows. Each rounds its intermediates to the tensor dtype where the composed ops would store
// them.
#include "backend/cuda/decode_fused.h"
#include "backend/cuda/gemv.cuh"

namespace wick::cuda {
namespace {

using decode_gemv::kElements;

// y[:, j] = swiglu(gate_j, up_j) with gate_j and up_j the products with rows j and columns + j of the packed
// weight, each rounded to T as the product's output would be.
template <typename T_, int M_>
struct NormLinearSwiglu {
  using T = T_;
  static constexpr int M = M_, R = 2;
  static constexpr bool kNormalize = true, kWeights = true;
  const T* a;
  const T* b;
  T* c;
  const T* bias;
  int64_t columns, k;  // columns = I
  const T* norm_weight;
  float eps;

  __device__ void rows(int64_t n, const T* (&row)[2]) const {
    row[0] = b + n * k;
    row[1] = b + (columns + n) * k;
  }
  struct Early {
    float gate_bias, up_bias;
  };
  __device__ Early early(int64_t n) const {
    return bias ? Early{to_float(bias[n]), to_float(bias[columns + n])} : Early{};
  }
  __device__ void store(int64_t n, const float (&sum)[2][M], const Early& e) const {
#pragma unroll
    for (int m = 0; m < M; ++m) {
      float gate = sum[0][m], up = sum[1][m];
      if (bias) {
        gate += e.gate_bias;
        up += e.up_bias;
      }
      gate = to_float(from_float<T>(gate));
      up = to_float(from_float<T>(up));
      c[m * columns + n] = from_float<T>(gate * (1.0f / (1.0f + expf(-gate))) * up);
    }
  }
};

// Where a decode step's rotated q, k and v go: q dense [batch, heads, 1, dim], the caches at positions[b].
template <typename T>
struct RopeCacheArgs {
  T* q;
  T* keys;
  T* values;
  const int64_t* positions;
  int64_t heads, kv_heads, dim, rotary, capacity;
  int64_t key_strides[3], value_strides[3];  // batch, head, position
  float theta;
  bool half_split;

  // Dimensions i0 and i1 of rotated pair i, and its rotation at `pos`, formed as the rope kernel forms them.
  __device__ void pair(int64_t i, int64_t& i0, int64_t& i1) const {
    const int64_t half = rotary / 2;
    i0 = half_split ? i : 2 * i;
    i1 = half_split ? i + half : 2 * i + 1;
  }
  __device__ void angle(int64_t i, int64_t pos, float& sin_v, float& cos_v) const {
    const float inv_freq = 1.0f / powf(theta, static_cast<float>(2 * i) / static_cast<float>(rotary));
    sincosf(static_cast<float>(pos) * inv_freq, &sin_v, &cos_v);
  }
  // Row b's head `head` of the packed q, k, v heads: its destination, or null for a k or v head whose
  // position lies outside the cache.
  __device__ T* destination(int64_t b, int64_t head, int64_t pos) const {
    if (head < heads) return q + (b * heads + head) * dim;
    if (pos < 0 || pos >= capacity) return nullptr;
    if (head < heads + kv_heads)
      return keys + b * key_strides[0] + (head - heads) * key_strides[1] + pos * key_strides[2];
    return values + b * value_strides[0] + (head - heads - kv_heads) * value_strides[1] +
           pos * value_strides[2];
  }
};

// The q/k/v projection of M decode rows (row m at positions[m]) with the rotation and cache writes as its
// epilogue: column c is pair c % (dim / 2) of packed head c / (dim / 2), whose two rows of w one warp reads.
// The product is rounded to T (the projection's output), then rotated (q, k) or copied (v) and rounded again.
template <typename T_, int M_>
struct NormLinearRopeCache {
  using T = T_;
  static constexpr int M = M_, R = 2;
  static constexpr bool kNormalize = true, kWeights = true;
  static constexpr int kMinBlocksPerSm = 1;  // the rotation's registers on top of the dot products
  const T* a;
  const T* b;
  const T* bias;
  int64_t columns, k;
  const T* norm_weight;
  float eps;
  RopeCacheArgs<T> out;

  __device__ void rows(int64_t c, const T* (&row)[2]) const {
    const int64_t half = out.dim / 2, head = c / half;
    int64_t i0, i1;
    out.pair(c % half, i0, i1);
    row[0] = b + (head * out.dim + i0) * k;
    row[1] = b + (head * out.dim + i1) * k;
  }
  // The bias pair and each row's position, loaded before the dot products; the rotation is formed at the end,
  // so no load or long computation holds up the weight loads.
  struct Early {
    float bias[2];
    int64_t pos[M];
  };
  __device__ Early early(int64_t c) const {
    const int64_t half = out.dim / 2, head = c / half;
    int64_t i0, i1;
    out.pair(c % half, i0, i1);
    Early e{};
    if (bias) {
      e.bias[0] = to_float(bias[head * out.dim + i0]);
      e.bias[1] = to_float(bias[head * out.dim + i1]);
    }
#pragma unroll
    for (int m = 0; m < M; ++m) e.pos[m] = out.positions[m];
    return e;
  }
  __device__ void store(int64_t c, const float (&sum)[2][M], const Early& e) const {
    const int64_t half = out.dim / 2, head = c / half, i = c % half;
    int64_t i0, i1;
    out.pair(i, i0, i1);
#pragma unroll
    for (int m = 0; m < M; ++m) {
      float u = to_float(from_float<T>(sum[0][m] + e.bias[0]));
      float v = to_float(from_float<T>(sum[1][m] + e.bias[1]));
      T* dst = out.destination(m, head, e.pos[m]);
      if (dst == nullptr) continue;
      if (head < out.heads + out.kv_heads) {
        float sin_v, cos_v;
        out.angle(i, e.pos[m], sin_v, cos_v);
        const float r0 = u * cos_v - v * sin_v, r1 = v * cos_v + u * sin_v;
        u = r0;
        v = r1;
      }
      dst[i0] = from_float<T>(u);
      dst[i1] = from_float<T>(v);
    }
  }
};

// Calls body(T{}, std::integral_constant<int, M>{}) for x's dtype (f32/f16/bf16) and its rows.
template <typename F>
void with_type_and_rows(const Tensor& x, std::string_view op, F&& body) {
  const int64_t rows = x.numel() / x.size(-1);
  with_float_type(x.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    if constexpr (!std::is_same_v<T, double>) decode_gemv::with_rows(rows, [&](auto m) { body(tag, m); });
  });
}

template <typename T>
RopeCacheArgs<T> rope_cache_args(const Tensor& positions, int64_t heads, int64_t kv_heads,
                                 const ops::RopeOptions& rope, const Tensor& key_cache,
                                 const Tensor& value_cache, const Tensor& q) {
  const int64_t dim = key_cache.size(3);
  return {ptr<T>(q),
          ptr<T>(key_cache),
          ptr<T>(value_cache),
          ptr<const int64_t>(positions),
          heads,
          kv_heads,
          dim,
          rope.rotary_dims == 0 ? dim : rope.rotary_dims,
          key_cache.size(2),
          {key_cache.stride(0), key_cache.stride(1), key_cache.stride(2)},
          {value_cache.stride(0), value_cache.stride(1), value_cache.stride(2)},
          static_cast<float>(rope.theta),
          rope.style == ops::RopeStyle::half_split};
}

// Block (head, b) of the packed row: a q head is rotated into q, a k head rotated into the key cache, a v
// head copied into the value cache, both at positions[b] (nothing written outside the capacity).
template <typename T, typename A>
__global__ void rope_write_cache_kernel(const T* qkv, RopeCacheArgs<T> a) {
  const int64_t b = blockIdx.y, head = blockIdx.x;
  const T* in = qkv + (b * (a.heads + 2 * a.kv_heads) + head) * a.dim;
  const int64_t pos = a.positions[b];
  T* out = a.destination(b, head, pos);
  if (out == nullptr) return;
  if (head >= a.heads + a.kv_heads) {
    for (int64_t j = threadIdx.x; j < a.dim; j += blockDim.x) out[j] = in[j];
    return;
  }
  for (int64_t i = threadIdx.x; i < a.rotary / 2; i += blockDim.x) {
    int64_t i0, i1;
    a.pair(i, i0, i1);
    float sin_v, cos_v;
    a.angle(i, pos, sin_v, cos_v);
    const A u = load_as<A>(in + i0), v = load_as<A>(in + i1);
    out[i0] = store_as<T>(u * A(cos_v) - v * A(sin_v));
    out[i1] = store_as<T>(v * A(cos_v) + u * A(sin_v));
  }
  for (int64_t j = a.rotary + threadIdx.x; j < a.dim; j += blockDim.x) out[j] = in[j];
}

bool aligned(const Tensor& t) {
  return reinterpret_cast<uintptr_t>(t.data_ptr()) % 16 == 0;
}

}  // namespace

bool add_linear_applies(const Tensor& out, const Tensor& x, const Tensor& w, const Tensor& bias) {
  const DType t = x.dtype();
  if (t != DType::f32 && t != DType::bf16 && t != DType::f16) return false;
  const int64_t k = x.size(-1);
  if (k <= 0 || x.numel() == 0) return false;
  const int64_t rows = x.numel() / k;
  return rows <= decode_gemv::kMaxRows && k * static_cast<int64_t>(dtype_size(t)) % 16 == 0 &&
         x.is_contiguous() && w.is_contiguous() && out.is_contiguous() &&
         (!bias.defined() || bias.is_contiguous()) && aligned(x) && aligned(w);
}

void add_linear(const Tensor& out, const Tensor& x, const Tensor& w, const Tensor& bias) {
  DeviceGuard guard(x.device().index);
  with_type_and_rows(x, "add_linear", [&](auto tag, auto m) {
    using T = decltype(tag);
    decode_gemv::launch_linear<T, decltype(m)::value, false, true>(
        ptr<const T>(x), ptr<const T>(w), ptr<T>(out), bias.defined() ? ptr<const T>(bias) : nullptr,
        w.size(0), x.size(-1), 1.0f, 1.0f, nullptr, 0.0f, x.device().index, stream_of(out), "add_linear");
  });
}

bool rms_norm_linear_applies(const Tensor& x, const Tensor& norm_weight, const Tensor& w,
                             const Tensor& bias) {
  const DType t = x.dtype();
  if (t != DType::f32 && t != DType::bf16 && t != DType::f16) return false;
  if (norm_weight.dtype() != t || w.dtype() != t || (bias.defined() && bias.dtype() != t)) return false;
  const int64_t k = x.size(-1);
  if (k <= 0 || x.numel() == 0) return false;
  const int64_t rows = x.numel() / k;
  const auto element_bytes = static_cast<int64_t>(dtype_size(t));
  return rows <= decode_gemv::kMaxRows && k * element_bytes % 16 == 0 && x.is_contiguous() &&
         norm_weight.is_contiguous() && w.is_contiguous() && (!bias.defined() || bias.is_contiguous()) &&
         aligned(x) && aligned(norm_weight) && aligned(w) &&
         decode_gemv::normalized_rows_fit(rows, k, dtype_size(t));
}

void rms_norm_linear(const Tensor& x, const Tensor& norm_weight, double eps, const Tensor& w,
                     const Tensor& bias, const Tensor& y) {
  DeviceGuard guard(x.device().index);
  with_type_and_rows(x, "rms_norm_linear", [&](auto tag, auto m) {
    using T = decltype(tag);
    decode_gemv::launch_linear<T, decltype(m)::value, true, true>(
        ptr<const T>(x), ptr<const T>(w), ptr<T>(y), bias.defined() ? ptr<const T>(bias) : nullptr, w.size(0),
        x.size(-1), 1.0f, 0.0f, ptr<const T>(norm_weight), static_cast<float>(eps), x.device().index,
        stream_of(y), "rms_norm_linear");
  });
}

void rms_norm_linear_swiglu(const Tensor& x, const Tensor& norm_weight, double eps, const Tensor& gate_up,
                            const Tensor& bias, const Tensor& y) {
  DeviceGuard guard(x.device().index);
  with_type_and_rows(x, "rms_norm_linear_swiglu", [&](auto tag, auto m) {
    using T = decltype(tag);
    const NormLinearSwiglu<T, decltype(m)::value> problem{ptr<const T>(x),
                                                          ptr<const T>(gate_up),
                                                          ptr<T>(y),
                                                          bias.defined() ? ptr<const T>(bias) : nullptr,
                                                          gate_up.size(0) / 2,
                                                          x.size(-1),
                                                          ptr<const T>(norm_weight),
                                                          static_cast<float>(eps)};
    decode_gemv::launch(problem, x.device().index, stream_of(y), "rms_norm_linear_swiglu");
  });
}

bool rms_norm_linear_rope_write_cache_applies(const Tensor& x, const Tensor& norm_weight, const Tensor& w,
                                              const Tensor& bias, const Tensor& positions,
                                              const ops::RopeOptions& rope, int64_t head_dim) {
  return rms_norm_linear_applies(x, norm_weight, w, bias) && positions.is_contiguous() &&
         (rope.rotary_dims == 0 || rope.rotary_dims == head_dim);
}

void rms_norm_linear_rope_write_cache(const Tensor& x, const Tensor& norm_weight, double eps, const Tensor& w,
                                      const Tensor& bias, const Tensor& positions, int64_t heads,
                                      int64_t kv_heads, const ops::RopeOptions& rope, const Tensor& key_cache,
                                      const Tensor& value_cache, const Tensor& q) {
  DeviceGuard guard(x.device().index);
  with_type_and_rows(x, "rms_norm_linear_rope_write_cache", [&](auto tag, auto m) {
    using T = decltype(tag);
    const NormLinearRopeCache<T, decltype(m)::value> problem{
        ptr<const T>(x),
        ptr<const T>(w),
        bias.defined() ? ptr<const T>(bias) : nullptr,
        w.size(0) / 2,
        x.size(-1),
        ptr<const T>(norm_weight),
        static_cast<float>(eps),
        rope_cache_args<T>(positions, heads, kv_heads, rope, key_cache, value_cache, q)};
    decode_gemv::launch(problem, x.device().index, stream_of(q), "rms_norm_linear_rope_write_cache");
  });
}

bool rope_write_cache_applies(const Tensor& qkv, const Tensor& positions) {
  return qkv.is_contiguous() && positions.is_contiguous() && qkv.size(0) <= 65535;
}

void rope_write_cache(const Tensor& qkv, const Tensor& positions, int64_t heads, int64_t kv_heads,
                      const ops::RopeOptions& rope, const Tensor& key_cache, const Tensor& value_cache,
                      const Tensor& q) {
  const int64_t batch = qkv.size(0), dim = key_cache.size(3);
  if (batch == 0 || dim == 0) return;
  DeviceGuard guard(qkv.device().index);
  const dim3 grid(static_cast<unsigned>(heads + 2 * kv_heads), static_cast<unsigned>(batch));
  with_float_type(qkv.dtype(), "rope_write_cache", [&](auto tag) {
    using T = decltype(tag);
    rope_write_cache_kernel<T, typename Accumulate<T>::type><<<grid, 64, 0, stream_of(qkv)>>>(
        ptr<const T>(qkv), rope_cache_args<T>(positions, heads, kv_heads, rope, key_cache, value_cache, q));
  });
  check_launch("rope_write_cache");
}

}  // namespace wick::cuda
