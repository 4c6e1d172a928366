// Row-major GEMM on dense f32/f64 buffers through OpenBLAS.
#pragma once

#include <cstdint>

namespace wick::cpu {

// C[M×N] = alpha·op(A)·op(B) + beta·C, all row-major with leading dimensions lda, ldb, ldc.
template <typename T>
void blas_gemm(bool transpose_a, bool transpose_b, int64_t m, int64_t n, int64_t k, T alpha, const T* a,
               int64_t lda, const T* b, int64_t ldb, T beta, T* c, int64_t ldc);

}  // namespace wick::cpu
