// Writes at device-side positions and in-place increments: tiny kernels that keep a decode step free of host
// reads, so it can be captured as a graph.
#include "backend/cuda/common.cuh"
#include "backend/cuda/kernels.h"

namespace wick::cuda {
namespace {

template <typename T>
__global__ void write_at_positions_kernel(T* cache, const T* values, const int64_t* positions, int64_t heads,
                                          int64_t capacity, int64_t dim, int64_t s0, int64_t s1, int64_t s2) {
  const int64_t b = blockIdx.y, h = blockIdx.x;
  const int64_t pos = positions[b];
  if (pos < 0 || pos >= capacity) return;
  T* dst = cache + b * s0 + h * s1 + pos * s2;
  const T* src = values + (b * heads + h) * dim;
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) dst[i] = src[i];
}

__global__ void increment_kernel(int64_t* t, int64_t n, int64_t step) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    t[i] += step;
}

}  // namespace

void write_at_positions(const Tensor& cache, const Tensor& values, const Tensor& positions) {
  const Tensor v = values.contiguous(), pos = positions.contiguous();
  const dim3 grid(static_cast<unsigned>(cache.size(1)), static_cast<unsigned>(cache.size(0)));
  with_float_type(cache.dtype(), "write_at_positions", [&](auto tag) {
    using T = decltype(tag);
    write_at_positions_kernel<T><<<grid, 128, 0, stream_of(cache)>>>(
        ptr<T>(cache), ptr<const T>(v), ptr<const int64_t>(pos), cache.size(1), cache.size(2), cache.size(3),
        cache.stride(0), cache.stride(1), cache.stride(2));
  });
  check_launch("write_at_positions");
}

void increment(const Tensor& t, int64_t step) {
  increment_kernel<<<static_cast<unsigned>(std::max<int64_t>(1, ceil_div(t.numel(), 256))), 256, 0,
                     stream_of(t)>>>(ptr<int64_t>(t), t.numel(), step);
  check_launch("increment");
}

}  // namespace wick::cuda
