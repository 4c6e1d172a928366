// Fused steps of an encoder (BERT) forward pass, each equal to the composition of plain ops named with it.
// On CUDA each runs as one kernel; elsewhere the composition (or a plain CPU loop) runs.
#pragma once

#include "wick/tensor.h"

namespace wick::ops {

// The embedding layer of BERT: layer_norm(add(add(embedding_unchecked(word_table, ids),
// embedding_unchecked(type_table, types)), embedding_unchecked(position_table, positions)), norm_weight,
// norm_bias, eps), every sum rounded to the tables' dtype as add stores it. ids and types i64 [batch, seq],
// positions i64 [seq] (shared by every row); tables [rows, hidden] of one float dtype, norm_weight and
// norm_bias [hidden]. Returns [batch, seq, hidden]. Like embedding_unchecked it reads no id back to the host,
// so it can be captured in a CUDA graph: callers check the ids, and an id outside its table reads as zeros.
Tensor embedding_sum_layer_norm(const Tensor& word_table, const Tensor& ids, const Tensor& type_table,
                                const Tensor& types, const Tensor& position_table, const Tensor& positions,
                                const Tensor& norm_weight, const Tensor& norm_bias, double eps);

// Mean pooling over right-padded rows: out[b] = the mean of x[b, s] over s < lengths[b] (lengths clamped to
// [0, seq]; a row of length 0 pools to zeros). x [batch, seq, width] of a float dtype, lengths i64 [batch] on
// x's device. Returns [batch, width] in f32 (f64 for f64 x), summed in that type or wider.
Tensor mean_pool(const Tensor& x, const Tensor& lengths);

}  // namespace wick::ops
