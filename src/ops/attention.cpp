#include "wick/ops/attention.h"

#include <cmath>

#include "backend/cpu/kernels.h"
#ifdef WICK_WITH_CUDA
#include "backend/cuda/decode_attention.h"
#include "backend/cuda/kernels.h"
#endif
#ifdef WICK_WITH_CUDNN
#include "backend/cudnn/attention.h"
#endif
#include "ops/check.h"
#include "ops/dispatch.h"

namespace wick::ops {
namespace {

struct AttentionCall {
  const Tensor& q;
  const Tensor& k;
  const Tensor& v;
  const AttentionOptions& options;
  const Tensor& out;
  const Tensor& lse;
};

struct AttentionBackwardCall {
  const Tensor& q;
  const Tensor& k;
  const Tensor& v;
  const Tensor& out;
  const Tensor& lse;
  const Tensor& dout;
  const AttentionOptions& options;
  const Tensor& dq;
  const Tensor& dk;
  const Tensor& dv;
};

void check_qkv(std::string_view op, const Tensor& q, const Tensor& k, const Tensor& v,
               const AttentionOptions& options) {
  check_floating(op, "q", q);
  check_floating(op, "k", k);
  check_floating(op, "v", v);
  check_rank(op, "q", q, 4);
  check_rank(op, "k", k, 4);
  check_shape(op, "v", v, k.shape());
  check_same_dtype(op, {{"q", &q}, {"k", &k}, {"v", &v}});
  check_same_device(op, {{"q", &q}, {"k", &k}, {"v", &v}, {"kv_lengths", &options.kv_lengths}});
  if (k.size(0) != q.size(0) || k.size(3) != q.size(3))
    fail(op, "k must have q's batch ({}) and head_dim ({}), got q={}, k={}", q.size(0), q.size(3), q.str(),
         k.str());
  if (k.size(1) == 0 || q.size(1) % k.size(1) != 0)
    fail(op, "query heads ({}) must be a multiple of key/value heads ({})", q.size(1), k.size(1));
  if (options.kv_lengths.defined()) {
    check_index_dtype(op, "kv_lengths", options.kv_lengths);
    check_shape(op, "kv_lengths", options.kv_lengths, {q.size(0)});
  }
  if (!std::isnan(options.scale) && !std::isfinite(options.scale))
    fail(op, "scale must be finite (or NaN for 1/sqrt(head_dim)), got {}", options.scale);
}

DType lse_dtype(const Tensor& q) {
  return q.dtype() == DType::f64 ? DType::f64 : DType::f32;
}

// The output is laid out as q is: when q is a [batch, seq, heads, dim] projection viewed as [batch, heads,
// seq, dim], so is the output, and the caller's transpose back to [batch, seq, heads·dim] needs no copy.
Tensor output_like(const Tensor& q) {
  const int64_t batch = q.size(0), heads = q.size(1), seq = q.size(2), dim = q.size(3);
  const bool sequence_major = heads > 1 && seq > 1 && q.stride(1) < q.stride(2);
  if (!sequence_major) return Tensor::empty(q.shape(), q.dtype(), q.device());
  return Tensor::empty({batch, seq, heads, dim}, q.dtype(), q.device()).transpose(1, 2);
}

#ifdef WICK_WITH_CUDNN
// cuDNN's fused attention against the flash kernels, same call on an H100 (bench/RESULTS.md, 2026-11-26):
// slower at 4 × 14 × 512 × 512 score entries (forward 0.032 vs 0.027 ms, with backward 0.110 vs 0.094),
// faster from 1 × 14 × 4096 × 4096 (0.114 vs 0.139 ms, 0.475 vs 0.653) up. The line sits between them, for
// callers that repeat their shapes (a new shape's plan costs 40 ms and more).
bool cudnn_preferred(const Tensor& q, const Tensor& k, const AttentionOptions& options) {
  return options.repeated_shape && q.size(0) * q.size(1) * q.size(2) * k.size(2) >= (int64_t{1} << 25);
}
#endif

}  // namespace

AttentionResult attention(const Tensor& q, const Tensor& k, const Tensor& v,
                          const AttentionOptions& options) {
  constexpr std::string_view op = "attention";
  check_qkv(op, q, k, v, options);
  AttentionResult result{output_like(q),
                         Tensor::empty({q.size(0), q.size(1), q.size(2)}, lse_dtype(q), q.device())};
  static const std::vector<Implementation<AttentionCall>> table = {
      {"cpu", "cpu tensors",
       [](const AttentionCall& c) {
         return on_cpu({&c.q, &c.k, &c.v});
       },
       [](const AttentionCall& c) { cpu::attention(c.q, c.k, c.v, c.options, c.out, c.lse); }},
#ifdef WICK_WITH_CUDA
      {"cuda_decode",
       "cuda bf16/f16 tensors, head_dim 64 or 128, one query per row, at most 1024 keys, at most one query "
       "head per multiprocessor, 16-byte-aligned rows with a unit last stride",
       [](const AttentionCall& c) {
         return on_cuda({&c.q, &c.k, &c.v}) && cuda::decode_attention_applies(c.q, c.k, c.v, c.out) &&
                c.lse.dtype() == DType::f32;
       },
       [](const AttentionCall& c) { cuda::decode_attention(c.q, c.k, c.v, c.options, c.out, c.lse); },
       // Taken in a decode step (its cache rows load while the step's previous kernel runs) and for short
       // caches; alone on 512 keys the split tensor-core kernel is faster (0.019 against 0.027 ms, H100).
       [](const AttentionCall& c) { return c.options.cache_prefix_settled || c.k.size(2) <= 256; }},
      {"cuda_flash_decode",
       "cuda bf16/f16 tensors, head_dim 64 or 128, 16-byte-aligned rows with a unit last stride, q_len <= 16 "
       "and at most 64 query rows per key/value head",
       [](const AttentionCall& c) {
         return on_cuda({&c.q, &c.k, &c.v}) &&
                cuda::flash_attention_applies(cuda::FlashKind::decode, c.q, c.k, c.v) &&
                cuda::flash_layout_supported(c.out, c.q) && c.lse.dtype() == DType::f32;
       },
       [](const AttentionCall& c) {
         cuda::flash_attention(cuda::FlashKind::decode, c.q, c.k, c.v, c.options, c.out, c.lse);
       }},
#ifdef WICK_WITH_CUDNN
      {"cuda_cudnn",
       "cuDNN 9 at run time, cuda bf16/f16 tensors, head_dim 64 or 128, no kv_lengths, a causal diagonal "
       "ending at the last key, 16-byte-aligned rows with a unit last stride, and a shape cuDNN has an "
       "engine "
       "for",
       [](const AttentionCall& c) {
         return cudnn::attention_applies(c.q, c.k, c.v, c.options, c.out) && c.lse.dtype() == DType::f32;
       },
       [](const AttentionCall& c) { cudnn::attention(c.q, c.k, c.v, c.options, c.out, c.lse); },
       [](const AttentionCall& c) { return cudnn_preferred(c.q, c.k, c.options); }},
#endif
      {"cuda_flash",
       "cuda bf16/f16 tensors, head_dim 32, 64 or 128, 16-byte-aligned rows with a unit last stride",
       [](const AttentionCall& c) {
         return on_cuda({&c.q, &c.k, &c.v}) &&
                cuda::flash_attention_applies(cuda::FlashKind::prefill, c.q, c.k, c.v) &&
                cuda::flash_layout_supported(c.out, c.q) && c.lse.dtype() == DType::f32;
       },
       [](const AttentionCall& c) {
         cuda::flash_attention(cuda::FlashKind::prefill, c.q, c.k, c.v, c.options, c.out, c.lse);
       }},
      {"cuda", "cuda tensors",
       [](const AttentionCall& c) {
         return on_cuda({&c.q, &c.k, &c.v});
       },
       [](const AttentionCall& c) { cuda::attention(c.q, c.k, c.v, c.options, c.out, c.lse); }},
#endif
  };
  dispatch(op, table, AttentionCall{q, k, v, options, result.out, result.lse},
           describe({{"q", &q}, {"k", &k}, {"v", &v}}));
  return result;
}

AttentionGrads attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                                  const Tensor& lse, const Tensor& dout, const AttentionOptions& options) {
  constexpr std::string_view op = "attention_backward";
  check_qkv(op, q, k, v, options);
  check_floating(op, "out", out);
  check_floating(op, "dout", dout);
  check_floating(op, "lse", lse);
  check_shape(op, "out", out, q.shape());
  check_shape(op, "dout", dout, q.shape());
  check_shape(op, "lse", lse, {q.size(0), q.size(1), q.size(2)});
  check_same_device(op, {{"q", &q}, {"out", &out}, {"lse", &lse}, {"dout", &dout}});
  AttentionGrads grads{output_like(q), output_like(k), output_like(v)};
  static const std::vector<Implementation<AttentionBackwardCall>> table = {
      {"cpu", "cpu tensors",
       [](const AttentionBackwardCall& c) {
         return on_cpu({&c.q, &c.k, &c.v, &c.out, &c.lse, &c.dout});
       },
       [](const AttentionBackwardCall& c) {
         cpu::attention_backward(c.q, c.k, c.v, c.out, c.lse, c.dout, c.options, c.dq, c.dk, c.dv);
       }},
#ifdef WICK_WITH_CUDA
#ifdef WICK_WITH_CUDNN
      {"cuda_cudnn",
       "cuDNN 9 at run time, cuda bf16/f16 tensors, head_dim 64 or 128, f32 lse, no kv_lengths, a causal "
       "diagonal ending at the last key, 16-byte-aligned rows with a unit last stride, and a shape cuDNN has "
       "an engine for",
       [](const AttentionBackwardCall& c) {
         return c.lse.dtype() == DType::f32 && c.lse.is_contiguous() && c.lse.device() == c.q.device() &&
                cudnn::attention_backward_applies(c.q, c.k, c.v, c.out, c.dout, c.options, c.dq, c.dk, c.dv);
       },
       [](const AttentionBackwardCall& c) {
         cudnn::attention_backward(c.q, c.k, c.v, c.out, c.lse, c.dout, c.options, c.dq, c.dk, c.dv);
       },
       [](const AttentionBackwardCall& c) { return cudnn_preferred(c.q, c.k, c.options); }},
#endif
      {"cuda_flash",
       "cuda bf16/f16 tensors, head_dim 64 or 128, f32 lse, 16-byte-aligned rows with a unit last stride",
       [](const AttentionBackwardCall& c) {
         return on_cuda({&c.q, &c.k, &c.v, &c.out, &c.lse, &c.dout}) &&
                cuda::flash_attention_backward_applies(c.q, c.k, c.v, c.out, c.lse, c.dout) &&
                cuda::flash_layout_supported(c.dq, c.q) && cuda::flash_layout_supported(c.dk, c.q) &&
                cuda::flash_layout_supported(c.dv, c.q);
       },
       [](const AttentionBackwardCall& c) {
         cuda::flash_attention_backward(c.q, c.k, c.v, c.out, c.lse, c.dout, c.options, c.dq, c.dk, c.dv);
       }},
      {"cuda", "cuda tensors",
       [](const AttentionBackwardCall& c) {
         return on_cuda({&c.q, &c.k, &c.v, &c.out, &c.lse, &c.dout});
       },
       [](const AttentionBackwardCall& c) {
         cuda::attention_backward(c.q, c.k, c.v, c.out, c.lse, c.dout, c.options, c.dq, c.dk, c.dv);
       }},
#endif
  };
  dispatch(op, table, AttentionBackwardCall{q, k, v, out, lse, dout, options, grads.dq, grads.dk, grads.dv},
           describe({{"q", &q}, {"k", &k}, {"v", &v}}));
  return grads;
}

}  // namespace wick::ops
