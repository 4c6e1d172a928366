// Cross-entropy over logits, mean over the targets that are not ignored.
#pragma once

#include "wick/tensor.h"

namespace wick::ops {

// logits: [N, V] float; targets: i32/i64 [N], each in [0, V) or == ignore_index.
// Returns a scalar f32 (f64 for f64 logits) tensor: the mean over counted targets (NaN when none count, as
// the reference does).
Tensor cross_entropy(const Tensor& logits, const Tensor& targets, int64_t ignore_index = -100);
// dlogits = (softmax(logits) − onehot(target)) · grad / count for counted rows, 0 for ignored ones.
Tensor cross_entropy_backward(const Tensor& logits, const Tensor& targets, int64_t ignore_index = -100,
                              double grad = 1.0);

}  // namespace wick::ops
