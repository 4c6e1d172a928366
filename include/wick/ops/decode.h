// Fused steps of a decoder layer on a few token rows, for decoding: each equals the composition of plain ops
// named with it, rounding every intermediate to the tensor dtype as those ops store it, and runs as one
// kernel where it can (CUDA, f32/f16/bf16, at most 4 dense, 16-byte-aligned rows with 16-byte multiples of
// elements); elsewhere it runs the composition itself. The weight matrix (w, gate_up) must not be written by
// work queued just before the op: on a GPU its first loads may start while the previous kernel still runs.
#pragma once

#include "wick/ops/rope.h"
#include "wick/tensor.h"

namespace wick::ops {

// The residual update of a decode step, in place: out += linear(x, w, bias), rounded once, as gemm with
// beta = 1 computes it. x [..., K], w [N, K], bias optional [N], out [..., N] with x's leading axes.
void add_linear(const Tensor& out, const Tensor& x, const Tensor& w, const Tensor& bias = Tensor());

// linear(rms_norm(x, norm_weight, eps), w, bias): x [..., K], norm_weight [K], w [N, K], bias optional [N].
// Returns [..., N] in x's dtype.
Tensor rms_norm_linear(const Tensor& x, const Tensor& norm_weight, double eps, const Tensor& w,
                       const Tensor& bias = Tensor());

// The gated MLP's first half: with y = linear(rms_norm(x, norm_weight, eps), gate_up, bias) over the packed
// weight gate_up [2·I, K] (gate rows, then up rows; bias optional [2·I] likewise), returns
// swiglu(y[..., :I], y[..., I:]), [..., I] in x's dtype.
Tensor rms_norm_linear_swiglu(const Tensor& x, const Tensor& norm_weight, double eps, const Tensor& gate_up,
                              const Tensor& bias = Tensor());

// One decode token per row after the fused q/k/v projection: qkv [batch, 1, (heads + 2·kv_heads)·dim] holds
// q, k and v heads in that order. Rotates the q and k heads as rope(·, options) would with positions[b] as
// row b's position (options.positions and position_offset stay unset), writes the rotated k and the v heads
// into key_cache and value_cache [batch, kv_heads, capacity, dim] at positions[b] as write_at_positions
// would (i64 [batch] on qkv's device; a position outside the capacity writes nothing), and returns the
// rotated q as [batch, heads, 1, dim], dense.
Tensor rope_write_cache(const Tensor& qkv, const Tensor& positions, int64_t heads, int64_t kv_heads,
                        const Tensor& key_cache, const Tensor& value_cache, const RopeOptions& options = {});

// The two steps above as one: rope_write_cache(rms_norm_linear(x, norm_weight, eps, w, bias), positions,
// heads, kv_heads, key_cache, value_cache, options) for x [batch, 1, K] and the packed q/k/v weight
// w [(heads + 2·kv_heads)·dim, K] (bias optional, likewise). Returns the rotated q, [batch, heads, 1, dim].
Tensor rms_norm_linear_rope_write_cache(const Tensor& x, const Tensor& norm_weight, double eps,
                                        const Tensor& w, const Tensor& bias, const Tensor& positions,
                                        int64_t heads, int64_t kv_heads, const Tensor& key_cache,
                                        const Tensor& value_cache, const RopeOptions& options = {});

}  // namespace wick::ops
