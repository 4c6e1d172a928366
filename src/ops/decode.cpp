#include "wick/ops/decode.h"

#include <algorithm>

#ifdef WICK_WITH_CUDA
#include "backend/cuda/decode_fused.h"
#endif
#include "ops/check.h"
#include "ops/dispatch.h"
#include "wick/ops/activation.h"
#include "wick/ops/cache_update.h"
#include "wick/ops/gemm.h"
#include "wick/ops/norm.h"

namespace wick::ops {
namespace {

struct AddLinearCall {
  const Tensor& out;
  const Tensor& x;
  const Tensor& w;
  const Tensor& bias;
};

struct NormLinearCall {
  const Tensor& x;
  const Tensor& norm_weight;
  double eps;
  const Tensor& w;
  const Tensor& bias;
  Tensor& out;
};

struct NormLinearRopeCacheCall {
  const Tensor& x;
  const Tensor& norm_weight;
  double eps;
  const Tensor& w;
  const Tensor& bias;
  const Tensor& positions;
  int64_t heads, kv_heads;
  const Tensor& key_cache;
  const Tensor& value_cache;
  const RopeOptions& options;
  Tensor& q;
};

struct RopeCacheCall {
  const Tensor& qkv;
  const Tensor& positions;
  int64_t heads, kv_heads;
  const Tensor& key_cache;
  const Tensor& value_cache;
  const RopeOptions& options;
  Tensor& q;
};

// x [..., K], norm_weight [K], w [N, K] and bias [N], as rms_norm and linear take them.
void check_norm_projection(std::string_view op, const Tensor& x, const Tensor& norm_weight, double eps,
                           std::string_view w_name, const Tensor& w, const Tensor& bias) {
  check_floating(op, "x", x);
  if (x.dim() == 0) fail(op, "x must have rank >= 1, got {}", x.str());
  if (!(eps >= 0)) fail(op, "eps must be >= 0, got {}", eps);
  check_floating(op, "norm_weight", norm_weight);
  check_shape(op, "norm_weight", norm_weight, {x.size(-1)});
  check_floating(op, w_name, w);
  check_rank(op, w_name, w, 2);
  if (w.size(1) != x.size(-1))
    fail(op, "{} must be [out, {}] to match x's last axis, got {} for x={}", w_name, x.size(-1), w.str(),
         x.str());
  check_same_dtype(op, {{"x", &x}, {w_name, &w}});
  if (bias.defined()) {
    check_floating(op, "bias", bias);
    check_shape(op, "bias", bias, {w.size(0)});
    check_same_dtype(op, {{"x", &x}, {"bias", &bias}});
  }
  check_same_device(op, {{"x", &x}, {"norm_weight", &norm_weight}, {w_name, &w}, {"bias", &bias}});
}

// The decode rows [batch, 1, ·] (`rows`, x or qkv), their `width` packed q/k/v outputs, the caches, the
// positions and the rope options, as rope_write_cache takes them. Returns head_dim.
int64_t check_rope_cache(std::string_view op, std::string_view rows_name, const Tensor& rows,
                         std::string_view width_name, int64_t width, const Tensor& positions, int64_t heads,
                         int64_t kv_heads, const Tensor& key_cache, const Tensor& value_cache,
                         const RopeOptions& options) {
  check_floating(op, rows_name, rows);
  check_rank(op, rows_name, rows, 3);
  if (rows.size(1) != 1)
    fail(op, "{} must hold one token per row, [batch, 1, {}], got {}", rows_name, rows.size(2), rows.str());
  if (heads <= 0 || kv_heads <= 0)
    fail(op, "heads and kv_heads must be positive, got {} and {}", heads, kv_heads);
  const int64_t heads_total = heads + 2 * kv_heads, batch = rows.size(0);
  if (width == 0 || width % heads_total != 0)
    fail(op, "{} ({}) must hold heads + 2·kv_heads = {} heads of one size", width_name, width, heads_total);
  const int64_t dim = width / heads_total;
  check_floating(op, "key_cache", key_cache);
  check_rank(op, "key_cache", key_cache, 4);
  check_shape(op, "key_cache", key_cache, {batch, kv_heads, key_cache.size(2), dim});
  check_floating(op, "value_cache", value_cache);
  check_shape(op, "value_cache", value_cache, key_cache.shape());
  check_same_dtype(op, {{rows_name, &rows}, {"key_cache", &key_cache}, {"value_cache", &value_cache}});
  check_defined(op, "positions", positions);
  if (positions.dtype() != DType::i64) fail(op, "positions must be i64, got {}", positions.str());
  check_shape(op, "positions", positions, {batch});
  check_same_device(op, {{rows_name, &rows},
                         {"positions", &positions},
                         {"key_cache", &key_cache},
                         {"value_cache", &value_cache}});
  if (key_cache.stride(3) != 1 || value_cache.stride(3) != 1)
    fail(op, "the caches' last axis must be contiguous, got key_cache={} and value_cache={}", key_cache.str(),
         value_cache.str());
  const int64_t rotary = options.rotary_dims == 0 ? dim : options.rotary_dims;
  if (rotary <= 0 || rotary > dim || rotary % 2 != 0)
    fail(op, "rotary_dims must be even and in (0, head_dim={}], got {}", dim, options.rotary_dims);
  if (!(options.theta > 0)) fail(op, "theta must be > 0, got {}", options.theta);
  if (options.positions.defined() || options.position_offset != 0)
    fail(op,
         "the positions come from the argument 'positions': options.positions and position_offset must "
         "stay unset");
  return dim;
}

Shape with_last(const Tensor& x, int64_t last) {
  Shape shape = x.shape();
  shape.back() = last;
  return shape;
}

}  // namespace

void add_linear(const Tensor& out, const Tensor& x, const Tensor& w, const Tensor& bias) {
  constexpr std::string_view op = "add_linear";
  check_floating(op, "x", x);
  if (x.dim() == 0) fail(op, "x must have rank >= 1, got {}", x.str());
  check_floating(op, "w", w);
  check_rank(op, "w", w, 2);
  if (w.size(1) != x.size(-1))
    fail(op, "w must be [out, {}] to match x's last axis, got {} for x={}", x.size(-1), w.str(), x.str());
  check_floating(op, "out", out);
  check_shape(op, "out", out, with_last(x, w.size(0)));
  if (bias.defined()) {
    check_floating(op, "bias", bias);
    check_shape(op, "bias", bias, {w.size(0)});
  }
  check_same_dtype(op, {{"out", &out}, {"x", &x}, {"w", &w}, {"bias", &bias}});
  check_same_device(op, {{"out", &out}, {"x", &x}, {"w", &w}, {"bias", &bias}});
  static const std::vector<Implementation<AddLinearCall>> table = {
#ifdef WICK_WITH_CUDA
      {"cuda_fused",
       "cuda, at most 4 rows, one f32/f16/bf16 dtype, dense, x and w 16-byte aligned, K a multiple of 16 "
       "bytes",
       [](const AddLinearCall& c) {
         return on_cuda({&c.out, &c.x, &c.w, &c.bias}) && cuda::add_linear_applies(c.out, c.x, c.w, c.bias);
       },
       [](const AddLinearCall& c) { cuda::add_linear(c.out, c.x, c.w, c.bias); }},
#endif
      {"composed", "nothing (gemm with beta = 1, on any device)", [](const AddLinearCall&) { return true; },
       [](const AddLinearCall& c) {
         const int64_t k = c.w.size(1), n = c.w.size(0), rows = c.out.numel() / std::max<int64_t>(n, 1);
         GemmOptions accumulate;
         accumulate.transpose_b = true;
         accumulate.beta = 1.0;
         accumulate.bias = c.bias;
         const Tensor dense = c.out.contiguous();
         gemm(c.x.reshape({rows, k}), c.w, dense.view({rows, n}), accumulate);
         if (dense.data_ptr() != c.out.data_ptr()) c.out.copy_(dense);
       }},
  };
  dispatch(op, table, AddLinearCall{out, x, w, bias},
           describe({{"out", &out}, {"x", &x}, {"w", &w}, {"bias", &bias}}));
}

Tensor rms_norm_linear(const Tensor& x, const Tensor& norm_weight, double eps, const Tensor& w,
                       const Tensor& bias) {
  constexpr std::string_view op = "rms_norm_linear";
  check_norm_projection(op, x, norm_weight, eps, "w", w, bias);
  static const std::vector<Implementation<NormLinearCall>> table = {
#ifdef WICK_WITH_CUDA
      {"cuda_fused",
       "cuda, x of at most 4 rows, one f32/f16/bf16 dtype, dense, x, norm_weight and w 16-byte aligned, K a "
       "multiple of 16 bytes",
       [](const NormLinearCall& c) {
         return on_cuda({&c.x, &c.norm_weight, &c.w, &c.bias}) &&
                cuda::rms_norm_linear_applies(c.x, c.norm_weight, c.w, c.bias);
       },
       [](const NormLinearCall& c) {
         c.out = Tensor::empty(with_last(c.x, c.w.size(0)), c.x.dtype(), c.x.device());
         cuda::rms_norm_linear(c.x, c.norm_weight, c.eps, c.w, c.bias, c.out);
       }},
#endif
      {"composed", "nothing (rms_norm, then linear, on any device)",
       [](const NormLinearCall&) { return true; },
       [](const NormLinearCall& c) { c.out = linear(rms_norm(c.x, c.norm_weight, c.eps), c.w, c.bias); }},
  };
  Tensor out;
  dispatch(op, table, NormLinearCall{x, norm_weight, eps, w, bias, out},
           describe({{"x", &x}, {"norm_weight", &norm_weight}, {"w", &w}, {"bias", &bias}}));
  return out;
}

Tensor rms_norm_linear_swiglu(const Tensor& x, const Tensor& norm_weight, double eps, const Tensor& gate_up,
                              const Tensor& bias) {
  constexpr std::string_view op = "rms_norm_linear_swiglu";
  check_norm_projection(op, x, norm_weight, eps, "gate_up", gate_up, bias);
  if (gate_up.size(0) % 2 != 0)
    fail(op, "gate_up must stack gate and up rows, [2·I, K], got an odd number of rows: {}", gate_up.str());
  static const std::vector<Implementation<NormLinearCall>> table = {
#ifdef WICK_WITH_CUDA
      {"cuda_fused",
       "cuda, x of at most 4 rows, one f32/f16/bf16 dtype, dense, x, norm_weight and gate_up 16-byte "
       "aligned, "
       "K a multiple of 16 bytes",
       [](const NormLinearCall& c) {
         return on_cuda({&c.x, &c.norm_weight, &c.w, &c.bias}) &&
                cuda::rms_norm_linear_applies(c.x, c.norm_weight, c.w, c.bias);
       },
       [](const NormLinearCall& c) {
         c.out = Tensor::empty(with_last(c.x, c.w.size(0) / 2), c.x.dtype(), c.x.device());
         cuda::rms_norm_linear_swiglu(c.x, c.norm_weight, c.eps, c.w, c.bias, c.out);
       }},
#endif
      {"composed", "nothing (rms_norm, linear, then swiglu of the halves, on any device)",
       [](const NormLinearCall&) { return true; },
       [](const NormLinearCall& c) {
         const Tensor y = linear(rms_norm(c.x, c.norm_weight, c.eps), c.w, c.bias);
         const int64_t inter = c.w.size(0) / 2;
         c.out = swiglu(y.narrow(-1, 0, inter), y.narrow(-1, inter, inter));
       }},
  };
  Tensor out;
  dispatch(op, table, NormLinearCall{x, norm_weight, eps, gate_up, bias, out},
           describe({{"x", &x}, {"norm_weight", &norm_weight}, {"gate_up", &gate_up}, {"bias", &bias}}));
  return out;
}

Tensor rope_write_cache(const Tensor& qkv, const Tensor& positions, int64_t heads, int64_t kv_heads,
                        const Tensor& key_cache, const Tensor& value_cache, const RopeOptions& options) {
  constexpr std::string_view op = "rope_write_cache";
  check_floating(op, "qkv", qkv);
  check_rank(op, "qkv", qkv, 3);
  check_rope_cache(op, "qkv", qkv, "qkv's last axis", qkv.size(2), positions, heads, kv_heads, key_cache,
                   value_cache, options);
  static const std::vector<Implementation<RopeCacheCall>> table = {
#ifdef WICK_WITH_CUDA
      {"cuda_fused", "cuda, dense qkv and positions, batch <= 65535",
       [](const RopeCacheCall& c) {
         return on_cuda({&c.qkv, &c.positions, &c.key_cache, &c.value_cache}) &&
                cuda::rope_write_cache_applies(c.qkv, c.positions);
       },
       [](const RopeCacheCall& c) {
         c.q = Tensor::empty({c.qkv.size(0), c.heads, 1, c.key_cache.size(3)}, c.qkv.dtype(), c.qkv.device());
         cuda::rope_write_cache(c.qkv, c.positions, c.heads, c.kv_heads, c.options, c.key_cache,
                                c.value_cache, c.q);
       }},
#endif
      {"composed", "nothing (rope, then write_at_positions of k and v, on any device)",
       [](const RopeCacheCall&) { return true; },
       [](const RopeCacheCall& c) {
         const int64_t rows = c.qkv.size(0), dim = c.key_cache.size(3), rotated_heads = c.heads + c.kv_heads;
         RopeOptions rope_options = c.options;
         rope_options.positions = c.positions.reshape({rows, 1});
         const Tensor rotated = rope(
             c.qkv.narrow(2, 0, rotated_heads * dim).reshape({rows, 1, rotated_heads, dim}), rope_options);
         const Tensor v =
             c.qkv.narrow(2, rotated_heads * dim, c.kv_heads * dim).reshape({rows, 1, c.kv_heads, dim});
         write_at_positions(c.key_cache, rotated.narrow(2, c.heads, c.kv_heads).transpose(1, 2), c.positions);
         write_at_positions(c.value_cache, v.transpose(1, 2), c.positions);
         c.q = rotated.narrow(2, 0, c.heads).transpose(1, 2).contiguous();
       }},
  };
  Tensor q;
  dispatch(op, table, RopeCacheCall{qkv, positions, heads, kv_heads, key_cache, value_cache, options, q},
           describe({{"qkv", &qkv}, {"key_cache", &key_cache}, {"value_cache", &value_cache}}));
  return q;
}

Tensor rms_norm_linear_rope_write_cache(const Tensor& x, const Tensor& norm_weight, double eps,
                                        const Tensor& w, const Tensor& bias, const Tensor& positions,
                                        int64_t heads, int64_t kv_heads, const Tensor& key_cache,
                                        const Tensor& value_cache, const RopeOptions& options) {
  constexpr std::string_view op = "rms_norm_linear_rope_write_cache";
  check_norm_projection(op, x, norm_weight, eps, "w", w, bias);
  check_rope_cache(op, "x", x, "w's rows", w.size(0), positions, heads, kv_heads, key_cache, value_cache,
                   options);
  static const std::vector<Implementation<NormLinearRopeCacheCall>> table = {
#ifdef WICK_WITH_CUDA
      {"cuda_fused",
       "cuda, at most 4 rows, one f32/f16/bf16 dtype, dense, x, norm_weight and w 16-byte aligned, K a "
       "multiple of 16 bytes, dense positions, the whole head rotated",
       [](const NormLinearRopeCacheCall& c) {
         return on_cuda({&c.x, &c.norm_weight, &c.w, &c.bias, &c.positions, &c.key_cache, &c.value_cache}) &&
                cuda::rms_norm_linear_rope_write_cache_applies(c.x, c.norm_weight, c.w, c.bias, c.positions,
                                                               c.options, c.key_cache.size(3));
       },
       [](const NormLinearRopeCacheCall& c) {
         c.q = Tensor::empty({c.x.size(0), c.heads, 1, c.key_cache.size(3)}, c.x.dtype(), c.x.device());
         cuda::rms_norm_linear_rope_write_cache(c.x, c.norm_weight, c.eps, c.w, c.bias, c.positions, c.heads,
                                                c.kv_heads, c.options, c.key_cache, c.value_cache, c.q);
       }},
#endif
      {"composed", "nothing (rms_norm_linear, then rope_write_cache, on any device)",
       [](const NormLinearRopeCacheCall&) { return true; },
       [](const NormLinearRopeCacheCall& c) {
         c.q = rope_write_cache(rms_norm_linear(c.x, c.norm_weight, c.eps, c.w, c.bias), c.positions, c.heads,
                                c.kv_heads, c.key_cache, c.value_cache, c.options);
       }},
  };
  Tensor q;
  dispatch(op, table,
           NormLinearRopeCacheCall{x, norm_weight, eps, w, bias, positions, heads, kv_heads, key_cache,
                                   value_cache, options, q},
           describe({{"x", &x}, {"w", &w}, {"key_cache", &key_cache}, {"value_cache", &value_cache}}));
  return q;
}

}  // namespace wick::ops
