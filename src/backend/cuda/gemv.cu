// Matrix-vector products for decode: C[M×N] = alpha·A[M×K]·B[N×K]ᵀ (+ beta·C) (+ bias) with M <= 4, the shape
// of a linear layer on one to four tokens. The vendor GEMM tiles for large M and leaves most of the chip idle
// here; the work is reading B once, which the kernel of gemv.cuh does at memory bandwidth. B may be any
// tensor here, so the kernel reads it only after the previous kernel is done (no early weight loads).
#include "backend/cuda/gemv.cuh"
#include "backend/cuda/kernels.h"

namespace wick::cuda {
namespace {

bool aligned(const void* p) {
  return reinterpret_cast<uintptr_t>(p) % 16 == 0;
}

}  // namespace

bool gemv_applies(const Tensor& a, const Tensor& b, const Tensor& c, const ops::GemmOptions& options) {
  const DType t = a.dtype();
  if (t != DType::f32 && t != DType::bf16 && t != DType::f16) return false;
  if (options.bias_gradient.defined()) return false;
  if (b.dtype() != t || c.dtype() != t || (options.bias.defined() && !options.bias.is_contiguous()))
    return false;
  if (a.dim() != 2 || b.dim() != 2 || c.dim() != 2) return false;  // no batch axes
  if (options.transpose_a || !options.transpose_b || options.allow_tf32) return false;
  const int64_t m = a.size(0), k = a.size(1);
  const int64_t elements_per_vector = 16 / static_cast<int64_t>(dtype_size(t));
  return m >= 1 && m <= decode_gemv::kMaxRows && k % elements_per_vector == 0 && a.is_contiguous() &&
         b.is_contiguous() && c.is_contiguous() && aligned(a.data_ptr()) && aligned(b.data_ptr());
}

void gemv(const Tensor& a, const Tensor& b, const Tensor& c, const ops::GemmOptions& options) {
  const int64_t m = a.size(0), k = a.size(1), n = b.size(0);
  if (n == 0) return;
  DeviceGuard guard(c.device().index);
  with_float_type(a.dtype(), "gemm", [&](auto tag) {
    using T = decltype(tag);
    if constexpr (!std::is_same_v<T, double>) {
      const T* bias = options.bias.defined() ? ptr<const T>(options.bias) : nullptr;
      decode_gemv::with_rows(m, [&](auto rows) {
        decode_gemv::launch_linear<T, decltype(rows)::value, false, false>(
            ptr<const T>(a), ptr<const T>(b), ptr<T>(c), bias, n, k, static_cast<float>(options.alpha),
            static_cast<float>(options.beta), nullptr, 0.0f, c.device().index, stream_of(c), "gemm");
      });
    }
  });
}

}  // namespace wick::cuda
