// Matrix-vector products for decode: C[M×N] = alpha·A[M×K]·B[N×K]ᵀ (+ beta·C) (+ bias) with M <= 4, the shape
// of a linear layer on one to four tokens. The vendor GEMM tiles for large M and leaves most of the chip idle
// here; the work is reading B once. One warp owns one output column n: its lanes stream row n of B in 16-byte
// vectors (coalesced), multiply by the M rows of A (re-read from L1/L2), reduce across the warp, and lane 0
// writes the M results.
#include "backend/cuda/common.cuh"
#include "backend/cuda/kernels.h"

namespace wick::cuda {
namespace {

constexpr int kMaxRows = 4;
constexpr int kWarpsPerBlock = 8;

template <typename T, int M>
__global__ void __launch_bounds__(kWarpsPerBlock * 32)
    gemv_kernel(const T* a, const T* b, T* c, const T* bias, int64_t n, int64_t k, float alpha, float beta) {
  constexpr int E = 16 / sizeof(T);
  const int64_t column = blockIdx.x * int64_t(kWarpsPerBlock) + threadIdx.x / 32;
  if (column >= n) return;
  const int lane = threadIdx.x % 32;
  const uint4* b_row = reinterpret_cast<const uint4*>(b + column * k);
  float sum[M] = {};
  for (int64_t v = lane; v < k / E; v += 32) {
    const uint4 b_raw = b_row[v];
    const T* b_e = reinterpret_cast<const T*>(&b_raw);
#pragma unroll
    for (int m = 0; m < M; ++m) {
      const uint4 a_raw = reinterpret_cast<const uint4*>(a + m * k)[v];
      const T* a_e = reinterpret_cast<const T*>(&a_raw);
#pragma unroll
      for (int e = 0; e < E; ++e) sum[m] += to_float(a_e[e]) * to_float(b_e[e]);
    }
  }
#pragma unroll
  for (int m = 0; m < M; ++m)
    for (int offset = 16; offset > 0; offset /= 2) sum[m] += __shfl_xor_sync(0xffffffffu, sum[m], offset);
  if (lane != 0) return;
#pragma unroll
  for (int m = 0; m < M; ++m) {
    float value = alpha * sum[m];
    if (beta != 0.0f) value += beta * to_float(c[m * n + column]);
    if (bias) value += to_float(bias[column]);
    c[m * n + column] = from_float<T>(value);
  }
}

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
  return m >= 1 && m <= kMaxRows && k % elements_per_vector == 0 && a.is_contiguous() && b.is_contiguous() &&
         c.is_contiguous() && aligned(a.data_ptr()) && aligned(b.data_ptr());
}

void gemv(const Tensor& a, const Tensor& b, const Tensor& c, const ops::GemmOptions& options) {
  const int64_t m = a.size(0), k = a.size(1), n = b.size(0);
  if (n == 0) return;
  DeviceGuard guard(c.device().index);
  const unsigned blocks = static_cast<unsigned>(ceil_div(n, kWarpsPerBlock));
  with_float_type(a.dtype(), "gemm", [&](auto tag) {
    using T = decltype(tag);
    if constexpr (!std::is_same_v<T, double>) {
      const T* bias = options.bias.defined() ? ptr<const T>(options.bias) : nullptr;
      auto launch = [&](auto rows) {
        gemv_kernel<T, decltype(rows)::value><<<blocks, kWarpsPerBlock * 32, 0, stream_of(c)>>>(
            ptr<const T>(a), ptr<const T>(b), ptr<T>(c), bias, n, k, static_cast<float>(options.alpha),
            static_cast<float>(options.beta));
      };
      switch (m) {
        case 1:
          launch(std::integral_constant<int, 1>{});
          break;
        case 2:
          launch(std::integral_constant<int, 2>{});
          break;
        case 3:
          launch(std::integral_constant<int, 3>{});
          break;
        default:
          launch(std::integral_constant<int, 4>{});
          break;
      }
    }
  });
  check_launch("gemm");
}

}  // namespace wick::cuda
