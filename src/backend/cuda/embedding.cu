// Embedding gather (one thread per output element) and its scatter-add backward (atomic adds into f32/f64, so
// the order of additions for a repeated id is not fixed). The front-end has validated the ids.
#include "backend/cuda/common.cuh"
#include "backend/cuda/kernels.h"

namespace wick::cuda {
namespace {

template <typename T>
__global__ void embedding_kernel(const T* weight, const int64_t* ids, T* out, int64_t n, int64_t dim,
                                 int64_t vocab) {
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < n * dim;
       t += int64_t(gridDim.x) * blockDim.x) {
    // Out-of-range ids only reach here unchecked (embedding_unchecked): they give a zero row.
    const int64_t id = ids[t / dim];
    out[t] = id >= 0 && id < vocab ? weight[id * dim + t % dim] : T(0.0f);
  }
}

template <typename T, typename A>
__global__ void embedding_backward_kernel(const int64_t* ids, const T* dy, A* dweight, int64_t n,
                                          int64_t dim) {
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < n * dim;
       t += int64_t(gridDim.x) * blockDim.x)
    atomicAdd(dweight + ids[t / dim] * dim + t % dim, load_as<A>(dy + t));
}

unsigned grid_for(int64_t n) {
  return static_cast<unsigned>(std::min<int64_t>(ceil_div(n, 256), 65536));
}

}  // namespace

void embedding(const Tensor& weight, const Tensor& ids, const Tensor& out) {
  const int64_t n = ids.numel(), dim = weight.size(1);
  const Tensor idx = ids.to(DType::i64).contiguous();
  if (n * dim == 0) return;
  const Tensor wd = weight.contiguous();
  with_float_type(weight.dtype(), "embedding", [&](auto tag) {
    using T = decltype(tag);
    embedding_kernel<T><<<grid_for(n * dim), 256, 0, stream_of(out)>>>(
        ptr<const T>(wd), ptr<const int64_t>(idx), ptr<T>(out), n, dim, weight.size(0));
  });
  check_launch("embedding");
}

void embedding_backward(const Tensor& ids, const Tensor& dy, const Tensor& dweight) {
  const int64_t n = ids.numel(), dim = dweight.size(1);
  const Tensor idx = ids.to(DType::i64).contiguous();
  dweight.fill_(0.0);
  if (n * dim == 0) return;
  const Tensor gd = dy.contiguous();
  with_float_type(dy.dtype(), "embedding_backward", [&](auto tag) {
    using T = decltype(tag);
    using A = typename Accumulate<T>::type;
    embedding_backward_kernel<T, A><<<grid_for(n * dim), 256, 0, stream_of(dy)>>>(
        ptr<const int64_t>(idx), ptr<const T>(gd), ptr<A>(dweight), n, dim);
  });
  check_launch("embedding_backward");
}

}  // namespace wick::cuda
