// Fused steps of a decode step on CUDA (decode_fused.cu), the kernels behind wick/ops/decode.h. Front-ends
// have validated the arguments and allocated the outputs; launches go on the device's current stream.
#pragma once

#include "wick/ops/rope.h"
#include "wick/tensor.h"

namespace wick::cuda {

// out [rows <= 4, N] += x [rows, K]·w [N, K]ᵀ (+ bias): one f32/f16/bf16 dtype, dense, x and w 16-byte
// aligned, K a multiple of 16 bytes.
bool add_linear_applies(const Tensor& out, const Tensor& x, const Tensor& w, const Tensor& bias);
void add_linear(const Tensor& out, const Tensor& x, const Tensor& w, const Tensor& bias);

// x [rows <= 4, K] (any leading axes), norm_weight [K], w [N, K] (for the SwiGLU form [2·I, K]), bias [N]:
// one f32/f16/bf16 dtype, dense, x, norm_weight and w 16-byte aligned, K a multiple of 16 bytes, and the
// normalized rows small enough for shared memory.
bool rms_norm_linear_applies(const Tensor& x, const Tensor& norm_weight, const Tensor& w, const Tensor& bias);
void rms_norm_linear(const Tensor& x, const Tensor& norm_weight, double eps, const Tensor& w,
                     const Tensor& bias, const Tensor& y);
void rms_norm_linear_swiglu(const Tensor& x, const Tensor& norm_weight, double eps, const Tensor& gate_up,
                            const Tensor& bias, const Tensor& y);

// rms_norm_linear's conditions (x [batch <= 4, 1, K]), dense positions and the whole head dimension rotated.
bool rms_norm_linear_rope_write_cache_applies(const Tensor& x, const Tensor& norm_weight, const Tensor& w,
                                              const Tensor& bias, const Tensor& positions,
                                              const ops::RopeOptions& rope, int64_t head_dim);
void rms_norm_linear_rope_write_cache(const Tensor& x, const Tensor& norm_weight, double eps, const Tensor& w,
                                      const Tensor& bias, const Tensor& positions, int64_t heads,
                                      int64_t kv_heads, const ops::RopeOptions& rope, const Tensor& key_cache,
                                      const Tensor& value_cache, const Tensor& q);

// qkv [batch, 1, (heads + 2·kv_heads)·dim] dense; caches with a contiguous last axis.
bool rope_write_cache_applies(const Tensor& qkv, const Tensor& positions);
void rope_write_cache(const Tensor& qkv, const Tensor& positions, int64_t heads, int64_t kv_heads,
                      const ops::RopeOptions& rope, const Tensor& key_cache, const Tensor& value_cache,
                      const Tensor& q);

}  // namespace wick::cuda
