// General matrix multiply: C = alpha·op(A)·op(B) + beta·C, op = identity or transpose.
#pragma once

#include "wick/tensor.h"

namespace wick::ops {

struct GemmOptions {
  bool transpose_a = false;
  bool transpose_b = false;
  double alpha = 1.0;
  double beta = 0.0;
  // f32 inputs may use TF32 tensor cores on CUDA (about 1e-3 relative error). Exact f32 unless asked.
  bool allow_tf32 = false;
  // Optional [N] vector of C's dtype added to every row of C (in the GEMM epilogue on CUDA):
  // C = alpha·op(A)·op(B) + beta·C + bias.
  Tensor bias;
  // Optional output [M], f32 (f64 for f64 operands), 2-D operands only: receives Σ_k op(A)[m, k]. In a weight
  // gradient dW = dYᵀ·X (transpose_a, A = dY) that is the bias gradient Σ_rows dY; on CUDA the GEMM's
  // epilogue computes it while it reads dY, where cuBLASLt supports that, instead of a separate pass.
  Tensor bias_gradient;
};

// A: [..., M, K] ([..., K, M] when transposed), B: [..., K, N] ([..., N, K] when transposed), C: [..., M, N].
// Leading (batch) axes of A and B broadcast against each other and must equal C's. A and B share a float
// dtype; C may be any float dtype (accumulation is in f32, or f64 for f64 inputs). With beta == 0, C is only
// written.
void gemm(const Tensor& a, const Tensor& b, const Tensor& c, const GemmOptions& options = {});

// A linear layer over the last axis of x: x·Wᵀ (+ bias), w: [out, in], bias: optional [out]; the bias is
// added by the GEMM epilogue. Returns [..., out] in x's dtype.
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& bias = Tensor());

// Allocates C with A's dtype: matmul(a, b) = op(a)·op(b).
Tensor matmul(const Tensor& a, const Tensor& b, bool transpose_a = false, bool transpose_b = false);

}  // namespace wick::ops
