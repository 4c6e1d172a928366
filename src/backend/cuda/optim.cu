// AdamW, Σ x² and dropout on the GPU. Σ x² reduces per block into a fixed grid of partials and then in one
// block, so the result is the same on every run.
#include <cmath>

#include "backend/cuda/common.cuh"
#include "backend/cuda/kernels.h"
#include "backend/cuda/philox.cuh"

namespace wick::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kPartials = 512;

unsigned blocks_for(int64_t n) {
  return static_cast<unsigned>(std::max<int64_t>(1, std::min<int64_t>(ceil_div(n, kThreads), 65536)));
}

template <typename T>
__global__ void adamw_kernel(T* p, const T* g, T* m, T* v, int64_t n, T lr_over_bias1, T bias2_sqrt, T b1,
                             T b2, T eps, T decay, T grad_scale) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    const T gi = g[i] * grad_scale;
    const T mi = m[i] + (T(1) - b1) * (gi - m[i]);  // PyTorch's lerp form, for the same rounding
    const T vi = b2 * v[i] + (T(1) - b2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    p[i] = p[i] * decay - lr_over_bias1 * mi / (sqrt(vi) / bias2_sqrt + eps);
  }
}

template <typename T>
__global__ void __launch_bounds__(kThreads) sum_squares_partial(const T* x, double* partial, int64_t n) {
  double s = 0;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    const double xi = static_cast<double>(to_float(x[i]));
    s += xi * xi;
  }
  s = block_sum(s);
  if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

template <>
__global__ void __launch_bounds__(kThreads) sum_squares_partial(const double* x, double* partial, int64_t n) {
  double s = 0;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    s += x[i] * x[i];
  s = block_sum(s);
  if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

__global__ void __launch_bounds__(kThreads) sum_partials(const double* partial, int count, double* out) {
  double s = 0;
  for (int i = threadIdx.x; i < count; i += blockDim.x) s += partial[i];
  s = block_sum(s);
  if (threadIdx.x == 0) *out = s;
}

template <typename T, typename A>
__global__ void dropout_kernel(const T* x, T* y, int64_t n, double p, A keep_scale, uint64_t seed,
                               uint64_t draw) {
  const int64_t groups = (n + 3) / 4;
  for (int64_t g = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; g < groups;
       g += int64_t(gridDim.x) * blockDim.x) {
    const Philox4 r = philox4x32(seed, draw, static_cast<uint64_t>(g));
    for (int j = 0; j < 4 && 4 * g + j < n; ++j) {
      const int64_t i = 4 * g + j;
      y[i] = philox_to_uniform(r.w[j]) >= p ? store_as<T>(load_as<A>(x + i) * keep_scale) : store_as<T>(A(0));
    }
  }
}

}  // namespace

void adamw_step(const Tensor& param, const Tensor& grad, const Tensor& m, const Tensor& v,
                const ops::AdamWOptions& o) {
  const double t = static_cast<double>(o.step);
  const double bias1 = 1.0 - std::pow(o.beta1, t), bias2_sqrt = std::sqrt(1.0 - std::pow(o.beta2, t));
  auto launch = [&](auto tag) {
    using T = decltype(tag);
    adamw_kernel<T><<<blocks_for(param.numel()), kThreads, 0, stream_of(param)>>>(
        ptr<T>(param), ptr<const T>(grad), ptr<T>(m), ptr<T>(v), param.numel(), static_cast<T>(o.lr / bias1),
        static_cast<T>(bias2_sqrt), static_cast<T>(o.beta1), static_cast<T>(o.beta2), static_cast<T>(o.eps),
        static_cast<T>(1.0 - o.lr * o.weight_decay), static_cast<T>(o.grad_scale));
  };
  if (param.dtype() == DType::f64) {
    launch(double{});
  } else {
    launch(float{});
  }
  check_launch("adamw_step");
}

void sum_of_squares(const Tensor& x, const Tensor& out) {
  const Tensor xd = x.contiguous();
  const int64_t n = xd.numel();
  Tensor partial = Tensor::empty({kPartials}, DType::f64, x.device());
  const unsigned blocks =
      static_cast<unsigned>(std::max<int64_t>(1, std::min<int64_t>(kPartials, ceil_div(n, kThreads))));
  with_float_type(x.dtype(), "sum_of_squares", [&](auto tag) {
    using T = decltype(tag);
    sum_squares_partial<T><<<blocks, kThreads, 0, stream_of(x)>>>(ptr<const T>(xd), ptr<double>(partial), n);
  });
  check_launch("sum_of_squares");
  sum_partials<<<1, kThreads, 0, stream_of(x)>>>(ptr<const double>(partial), static_cast<int>(blocks),
                                                 ptr<double>(out));
  check_launch("sum_of_squares");
}

void dropout(const Tensor& x, double p, uint64_t seed, uint64_t draw, const Tensor& out) {
  const Tensor xd = x.contiguous();
  with_float_type(x.dtype(), "dropout", [&](auto tag) {
    using T = decltype(tag);
    using A = typename Accumulate<T>::type;
    dropout_kernel<T, A><<<blocks_for(ceil_div(x.numel(), 4)), kThreads, 0, stream_of(x)>>>(
        ptr<const T>(xd), ptr<T>(out), x.numel(), p, static_cast<A>(1.0 / (1.0 - p)), seed, draw);
  });
  check_launch("dropout");
}

}  // namespace wick::cuda
