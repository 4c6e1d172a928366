// Training primitives over parameter buffers: the AdamW update, the squared norm behind gradient clipping and
// NaN detection, and inverted dropout.
#pragma once

#include <cstdint>

#include "wick/tensor.h"

namespace wick::ops {

struct AdamWOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.01;
  int64_t step = 1;         // the optimizer step this update is (1 for the first), for the bias corrections
  double grad_scale = 1.0;  // the gradient is multiplied by this first (gradient clipping)
};

// One AdamW update in place, with PyTorch's semantics: p ← p·(1 − lr·wd); m ← β1·m + (1 − β1)·g;
// v ← β2·v + (1 − β2)·g²; p ← p − lr/(1 − β1^t) · m / (√v / √(1 − β2^t) + eps). param, grad, m and v are
// dense tensors of one shape and one dtype, f32 or f64, on one device.
void adamw_step(const Tensor& param, const Tensor& grad, const Tensor& m, const Tensor& v,
                const AdamWOptions& options);

// Σ x² over every element, as a scalar f64 tensor on x's device (accumulated in f64, in a fixed order).
Tensor sum_of_squares(const Tensor& x);

// Inverted dropout: element i (in row-major order) is kept when uniform i of the Philox stream (seed, draw)
// is at least p, and kept values are scaled by 1/(1 − p). The same (seed, draw) gives the same mask on every
// device, and the op is linear in x, so its backward is the same call on the output gradient. p in [0, 1).
Tensor dropout(const Tensor& x, double p, uint64_t seed, uint64_t draw);

}  // namespace wick::ops
