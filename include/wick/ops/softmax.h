// Softmax and log-softmax, numerically stable for any logit magnitude.
#pragma once

#include "wick/tensor.h"

namespace wick::ops {

// Masks for the last axis of [..., rows, cols] scores. A masked element gets probability 0; a row with every
// element masked is all zeros (not NaN).
struct SoftmaxMask {
  // Masks column j of row i when j > i + causal_offset (queries at the end of the key range: offset = cols -
  // rows).
  bool causal = false;
  int64_t causal_offset = 0;
  // Optional i32/i64 [x.size(0)]: in batch b (first axis), columns j >= lengths[b] are masked.
  Tensor lengths;
};

Tensor softmax(const Tensor& x, int64_t axis = -1, const SoftmaxMask& mask = {});
Tensor log_softmax(const Tensor& x, int64_t axis = -1);
// Given y = softmax(x) and dy, returns dx = y·(dy − Σ y·dy).
Tensor softmax_backward(const Tensor& y, const Tensor& dy, int64_t axis = -1);
// Given y = log_softmax(x) and dy, returns dx = dy − exp(y)·Σ dy.
Tensor log_softmax_backward(const Tensor& y, const Tensor& dy, int64_t axis = -1);

}  // namespace wick::ops
