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

// The loss and its gradient in one pass over the logits (each row is read for its log-sum-exp and written as
// its gradient by the same kernel on CUDA): loss as cross_entropy, dlogits as cross_entropy_backward.
struct CrossEntropyWithGrad {
  Tensor loss;
  Tensor dlogits;
};
CrossEntropyWithGrad cross_entropy_with_grad(const Tensor& logits, const Tensor& targets,
                                             int64_t ignore_index = -100, double grad = 1.0);

// Cross-entropy of the logits hidden·Wᵀ (a language-model head) without ever holding all of them: tokens go
// through in chunks of `chunk_tokens`, each chunk's logits [chunk, V] are formed by one GEMM, turned into
// their gradient, and folded into dhidden = dlogits·W before the next chunk reuses the memory. W is frozen
// (no dW). hidden: [N, H]; weight: [V, H] of hidden's dtype; targets: i32/i64 [N]. The loss is the mean over
// counted targets (f32, f64 for f64); dhidden has hidden's dtype and is undefined unless asked for.
struct LinearCrossEntropy {
  Tensor loss;
  Tensor dhidden;
};
LinearCrossEntropy linear_cross_entropy(const Tensor& hidden, const Tensor& weight, const Tensor& targets,
                                        int64_t ignore_index = -100, bool compute_grad = true,
                                        int64_t chunk_tokens = 1024);

}  // namespace wick::ops
