// Fused steps of an encoder forward pass on CUDA (encoder_fused.cu), the kernels behind wick/ops/encoder.h.
// Front-ends have validated the arguments and allocated the outputs; launches go on the device's stream.
#pragma once

#include "wick/tensor.h"

namespace wick::cuda {

// Tables [rows, hidden] and the norm's weight and bias (optional) of one f32/f16/bf16 dtype, contiguous and
// 16-byte aligned, hidden a multiple of 16 bytes and at most 256 16-byte vectors; dense i64 ids, types and
// positions.
bool embedding_sum_layer_norm_applies(const Tensor& word_table, const Tensor& ids, const Tensor& type_table,
                                      const Tensor& types, const Tensor& position_table,
                                      const Tensor& positions, const Tensor& norm_weight,
                                      const Tensor& norm_bias);
// One warp a token: the three rows summed as the composed adds round them, then the same LayerNorm row
// computation as the LayerNorm kernel, so the result has the composition's bits. out [batch, seq, hidden].
void embedding_sum_layer_norm(const Tensor& word_table, const Tensor& ids, const Tensor& type_table,
                              const Tensor& types, const Tensor& position_table, const Tensor& positions,
                              const Tensor& norm_weight, const Tensor& norm_bias, double eps,
                              const Tensor& out);

// x [batch, seq, width] of any float dtype, lengths i64 [batch]; out [batch, width] f32 (f64 for f64 x).
void mean_pool(const Tensor& x, const Tensor& lengths, const Tensor& out);

}  // namespace wick::cuda
