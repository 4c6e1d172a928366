// GEMM on OpenBLAS. Matrix views go straight to cblas (a column-major operand is a transposed row-major one);
// half-precision operands are widened to f32 first, as OpenBLAS has no half GEMM.
#include <cblas.h>

#include "backend/cpu/blas.h"
#include "backend/cpu/compute.h"
#include "backend/cpu/kernels.h"
#include "wick/matrix_view.h"

namespace wick::cpu {

template <typename T>
void blas_gemm(bool transpose_a, bool transpose_b, int64_t m, int64_t n, int64_t k, T alpha, const T* a,
               int64_t lda, const T* b, int64_t ldb, T beta, T* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  if (k == 0) {  // no products: C = beta·C (beta 0 overwrites, even NaN)
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) c[i * ldc + j] = beta == T(0) ? T(0) : beta * c[i * ldc + j];
    return;
  }
  const auto ta = transpose_a ? CblasTrans : CblasNoTrans;
  const auto tb = transpose_b ? CblasTrans : CblasNoTrans;
  if constexpr (std::is_same_v<T, float>) {
    cblas_sgemm(CblasRowMajor, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  } else {
    cblas_dgemm(CblasRowMajor, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  }
}

template void blas_gemm<float>(bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t,
                               const float*, int64_t, float, float*, int64_t);
template void blas_gemm<double>(bool, bool, int64_t, int64_t, int64_t, double, const double*, int64_t,
                                const double*, int64_t, double, double*, int64_t);

namespace {

template <typename T>
void gemm_typed(const Tensor& a, const Tensor& b, const Tensor& c, const ops::GemmOptions& options) {
  const Shape batch(c.shape().begin(), c.shape().end() - 2);
  auto expand_batch = [&](const Tensor& t) {
    Shape shape = batch;
    shape.push_back(t.size(-2));
    shape.push_back(t.size(-1));
    return t.expand(shape);
  };
  const bool native = c.dtype() == dtype_of_v<T> && a.dtype() == dtype_of_v<T>;
  const MatrixOperand A = matrix_operand(expand_batch(native ? a : a.to(dtype_of_v<T>)));
  const MatrixOperand B = matrix_operand(expand_batch(native ? b : b.to(dtype_of_v<T>)));
  // C must be a writable, non-broadcast view of T; otherwise compute into a dense copy and write it back.
  std::optional<MatrixView> c_view;
  if (c.dtype() == dtype_of_v<T>) c_view = try_matrix_view(c);
  const bool c_direct = c_view && (c_view->batch <= 1 || c_view->batch_stride != 0);
  Tensor c_work = c;
  if (!c_direct) {
    c_work = Tensor::empty(c.shape(), dtype_of_v<T>);
    if (options.beta != 0.0) c_work.copy_(c);
    c_view = try_matrix_view(c_work);
  }
  const MatrixView& C = *c_view;
  const int64_t m = C.rows, n = C.cols;
  const int64_t k = options.transpose_a ? A.view.rows : A.view.cols;
  // Row-major transposition of each stored operand: the requested op, flipped for a column-major layout.
  const bool eff_a = options.transpose_a != A.view.column_major;
  const bool eff_b = options.transpose_b != B.view.column_major;
  const T alpha = static_cast<T>(options.alpha), beta = static_cast<T>(options.beta);
  const T* a_data = static_cast<const T*>(A.view.data);
  const T* b_data = static_cast<const T*>(B.view.data);
  T* c_data = static_cast<T*>(C.data);
  const int64_t batches = shape_numel(batch);
  for (int64_t i = 0; i < batches; ++i) {
    const T* ai = a_data + i * A.view.batch_stride;
    const T* bi = b_data + i * B.view.batch_stride;
    T* ci = c_data + i * C.batch_stride;
    if (!C.column_major) {
      blas_gemm<T>(eff_a, eff_b, m, n, k, alpha, ai, A.view.ld, bi, B.view.ld, beta, ci, C.ld);
    } else {  // Cᵀ = op(B)ᵀ·op(A)ᵀ, row-major
      blas_gemm<T>(!eff_b, !eff_a, n, m, k, alpha, bi, B.view.ld, ai, A.view.ld, beta, ci, C.ld);
    }
  }
  if (options.bias.defined()) {
    const Tensor bias = dense<T>(options.bias);
    const T* bias_data = bias.data<T>();
    for (int64_t i = 0; i < batches; ++i) {
      T* ci = c_data + i * C.batch_stride;
      for (int64_t r = 0; r < m; ++r)
        for (int64_t col = 0; col < n; ++col)
          ci[C.column_major ? col * C.ld + r : r * C.ld + col] += bias_data[col];
    }
  }
  if (!c_direct) c.copy_(c_work);
}

}  // namespace

void gemm(const Tensor& a, const Tensor& b, const Tensor& c, const ops::GemmOptions& options) {
  with_compute_type(a.dtype(), [&](auto tag) { gemm_typed<decltype(tag)>(a, b, c, options); });
  if (options.bias_gradient.defined()) {  // Σ_k op(A)[m, k]
    const Tensor op_a = options.transpose_a ? a.transpose(0, 1) : a;
    options.bias_gradient.copy_(ops::sum_to_shape(op_a, {op_a.size(0), 1}).view({op_a.size(0)}));
  }
}

}  // namespace wick::cpu
