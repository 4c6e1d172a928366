// Embedding lookup and its scatter-add backward.
#pragma once

#include "wick/tensor.h"

namespace wick::ops {

// weight: [vocab, dim]; ids: i32/i64 of any shape, each in [0, vocab). Returns [ids..., dim].
Tensor embedding(const Tensor& weight, const Tensor& ids);
// As embedding, without reading the ids back to the host (which waits for a GPU), so that it can run inside
// a captured CUDA graph: for ids the model produced itself on the device (argmax, sampling), always in range.
// An out-of-range id gives a zero row instead of an error.
Tensor embedding_unchecked(const Tensor& weight, const Tensor& ids);
// Returns dweight [vocab, dim] (f32, or f64 for f64 dy): row v is the sum of dy over positions with id v.
Tensor embedding_backward(const Tensor& ids, const Tensor& dy, int64_t vocab);

}  // namespace wick::ops
