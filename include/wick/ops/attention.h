// Scaled dot-product attention with grouped KV heads: the reference implementation from GEMM and softmax.
#pragma once

#include <limits>

#include "wick/tensor.h"

namespace wick::ops {

struct AttentionOptions {
  bool causal = true;
  // Softmax scale; NaN means 1/sqrt(head_dim).
  double scale = std::numeric_limits<double>::quiet_NaN();
  // Absolute position of query 0 within the keys, for causal masking (query i sees keys j <= i + offset).
  // Negative means keys_len − queries_len: the queries are the last tokens (prefill after a KV cache).
  int64_t query_offset = -1;
  // Optional i32/i64 [batch]: keys j >= kv_lengths[b] are masked (padded batches).
  Tensor kv_lengths;
  // The caller runs these shapes many times (a training loop, a benchmark): implementations with a one-time
  // setup per shape may be chosen by default. cuDNN's plan costs ~40 ms per new shape (and ~1 s to load cuDNN
  // in a process), which one prefill never earns back.
  bool repeated_shape = false;
  // A decode step over a KV cache: kv_lengths and every key/value row below each sequence's last key were
  // final before the step's first kernel, and only the last row may come from the kernels just before this
  // one. An implementation may then load those rows while the previous kernel still runs.
  bool cache_prefix_settled = false;
};

struct AttentionResult {
  Tensor out;  // [batch, q_heads, q_len, head_dim], q's dtype and layout (sequence-major when q is)
  Tensor
      lse;  // [batch, q_heads, q_len] f32 (f64 for f64): log-sum-exp of the scaled scores, for the backward
};

// q: [batch, q_heads, q_len, head_dim]; k, v: [batch, kv_heads, kv_len, head_dim]; q_heads % kv_heads == 0.
AttentionResult attention(const Tensor& q, const Tensor& k, const Tensor& v,
                          const AttentionOptions& options = {});

struct AttentionGrads {
  Tensor dq;
  Tensor dk;
  Tensor dv;
};
AttentionGrads attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                                  const Tensor& lse, const Tensor& dout,
                                  const AttentionOptions& options = {});

}  // namespace wick::ops
