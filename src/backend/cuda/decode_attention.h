// Attention of one query token per row against a short key/value cache (decode_attention.cu), on the CUDA
// cores: one block per query head, every key's score from one lane (the whole key row in registers), the
// softmax over the block, then P·V with the lanes along the head dimension. For caches of a few tiles it has
// many more warps at work than the tensor-core flash kernel, which packs a key/value head's query heads into
// one warp. It is a dependent launch: with options.cache_prefix_settled, the cache rows below the last are
// copied to shared memory while the kernel before it (the one that wrote q and the last row) still runs.
#pragma once

#include "wick/ops/attention.h"
#include "wick/tensor.h"

namespace wick::cuda {

// q [batch, q_heads, 1, D] and k, v [batch, kv_heads, L, D] of one bf16/f16 dtype, D 64 or 128, rows of the
// last axis contiguous and 16-byte aligned, L <= kDecodeAttentionMaxKeys, and no more query heads in all than
// the device has multiprocessors.
constexpr int64_t kDecodeAttentionMaxKeys = 1024;
bool decode_attention_applies(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out);
// Writes out (q's dtype) and lse (f32 [batch, q_heads, 1]); fully masked rows give zeros and -inf.
void decode_attention(const Tensor& q, const Tensor& k, const Tensor& v, const ops::AttentionOptions& options,
                      const Tensor& out, const Tensor& lse);

}  // namespace wick::cuda
