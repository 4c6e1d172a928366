// Cross-entropy, one block per row: an online max / sum-of-exp pass gives the row's max and log-sum, the loss
// is log Σ exp(x − max) − (logit[target] − max); a second single-block kernel averages the per-row losses in
// a fixed order (deterministic). The backward writes (softmax − onehot)·grad/count in the same row pass. The
// count of targets that are not ignored is computed on the device, so nothing waits on the host (the
// front-end has validated the targets).
#include "backend/cuda/common.cuh"
#include "backend/cuda/kernels.h"

namespace wick::cuda {
namespace {

// The row's max and log Σ exp(x − max), kept apart: adding them first would round away the low bits of the
// loss when the logits are large.
template <typename A>
struct LogSumExp {
  A max;
  A log_sum;
};

// 16-bit rows of whole, aligned 16-byte vectors are read 8 elements at a time (kVector).
template <typename T, typename A>
constexpr bool kVectorizable = sizeof(T) == 2 && std::is_same_v<A, float>;

template <typename T, typename A, bool kVector>
__device__ LogSumExp<A> row_log_sum_exp(const T* row, int64_t cols) {
  A m = -INFINITY, s = 0;
  if constexpr (kVector && kVectorizable<T, A>) {
    // Four vectors in flight per thread; each vector rescales the running sum once.
    constexpr int kUnroll = 4;
    const int64_t vectors = cols / 8, step = int64_t(blockDim.x) * kUnroll;
    for (int64_t base = threadIdx.x; base < vectors; base += step) {
      float v[kUnroll][8];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const int64_t j = base + int64_t(u) * blockDim.x;
        if (j < vectors) {
          load_vector(row, j, v[u]);
        } else {
#pragma unroll
          for (int e = 0; e < 8; ++e) v[u][e] = -INFINITY;
        }
      }
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        float local = v[u][0];
#pragma unroll
        for (int e = 1; e < 8; ++e) local = max(local, v[u][e]);
        const A m_new = max(m, local);
        if (m_new == A(-INFINITY)) continue;  // nothing above -inf yet
        A sum = 0;
#pragma unroll
        for (int e = 0; e < 8; ++e) sum += exp(v[u][e] - m_new);
        s = s * exp(m - m_new) + sum;
        m = m_new;
      }
    }
  } else {
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
      const A v = load_as<A>(row + j);
      const A m_new = max(m, v);
      s = s * exp(m - m_new) + exp(v - m_new);
      m = m_new;
    }
  }
  const A row_max = block_max(m);
  s = m == A(-INFINITY) ? A(0) : s * exp(m - row_max);
  return {row_max, log(block_sum(s))};
}

// d[j] = (softmax(x)[j] − [j == target])·factor over the row.
template <typename T, typename A, bool kVector>
__device__ void write_row_gradient(const T* x, T* d, int64_t cols, int64_t target, const LogSumExp<A>& lse,
                                   A factor) {
  if constexpr (kVector && kVectorizable<T, A>) {
    const int64_t vectors = cols / 8;
    for (int64_t j = threadIdx.x; j < vectors; j += blockDim.x) {
      float v[8];
      load_vector(x, j, v);
#pragma unroll
      for (int e = 0; e < 8; ++e)
        v[e] = (exp(v[e] - lse.max - lse.log_sum) - (j * 8 + e == target ? A(1) : A(0))) * factor;
      store_vector(d, j, v);
    }
  } else {
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x)
      d[j] = store_as<T>((exp(load_as<A>(x + j) - lse.max - lse.log_sum) - (j == target ? A(1) : A(0))) *
                         factor);
  }
}

template <typename T, typename A, bool kVector>
__global__ void cross_entropy_rows(const T* logits, const int64_t* targets, A* per_row, int64_t cols,
                                   int64_t ignore) {
  const int64_t row = blockIdx.x;
  const int64_t target = targets[row];
  if (target == ignore) {
    if (threadIdx.x == 0) per_row[row] = 0;
    return;
  }
  const LogSumExp<A> lse = row_log_sum_exp<T, A, kVector>(logits + row * cols, cols);
  if (threadIdx.x == 0) per_row[row] = lse.log_sum - (load_as<A>(logits + row * cols + target) - lse.max);
}

// The mean over counted rows; 0/0 gives NaN when every target is ignored, as the reference does.
template <typename A>
__global__ void mean_kernel(const A* per_row, int64_t rows, const A* count, A* out) {
  A total = 0;
  for (int64_t r = threadIdx.x; r < rows; r += blockDim.x) total += per_row[r];
  total = block_sum(total);
  if (threadIdx.x == 0) *out = total / *count;
}

template <typename T, typename A, bool kVector>
__global__ void cross_entropy_backward_rows(const T* logits, const int64_t* targets, T* dlogits, int64_t cols,
                                            int64_t ignore, A grad, const A* count) {
  const int64_t row = blockIdx.x;
  const A factor = grad / *count;
  const int64_t target = targets[row];
  const T* x = logits + row * cols;
  T* d = dlogits + row * cols;
  if (target == ignore) {
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) d[j] = store_as<T>(A(0));
    return;
  }
  const LogSumExp<A> lse = row_log_sum_exp<T, A, kVector>(x, cols);
  write_row_gradient<T, A, kVector>(x, d, cols, target, lse, factor);
}

// Loss and gradient of a row in one block: per-row loss to `per_row`, (softmax − onehot)·grad/count to
// dlogits.
template <typename T, typename A, bool kVector>
__global__ void cross_entropy_with_grad_rows(const T* logits, const int64_t* targets, A* per_row, T* dlogits,
                                             int64_t cols, int64_t ignore, A grad, const A* count) {
  const int64_t row = blockIdx.x;
  const int64_t target = targets[row];
  const T* x = logits + row * cols;
  T* d = dlogits + row * cols;
  if (target == ignore) {
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) d[j] = store_as<T>(A(0));
    if (threadIdx.x == 0) per_row[row] = 0;
    return;
  }
  const LogSumExp<A> lse = row_log_sum_exp<T, A, kVector>(x, cols);
  if (threadIdx.x == 0) per_row[row] = lse.log_sum - (load_as<A>(x + target) - lse.max);
  write_row_gradient<T, A, kVector>(x, d, cols, target, lse, grad / *count);
}

// Whether rows of these tensors can be read and written as 16-byte vectors.
bool vector_rows(const Tensor& logits, const Tensor& dlogits, int64_t cols) {
  const auto aligned = [](const Tensor& t) {
    return !t.defined() || reinterpret_cast<uintptr_t>(t.data_ptr()) % 16 == 0;
  };
  return (logits.dtype() == DType::bf16 || logits.dtype() == DType::f16) && cols % 8 == 0 &&
         aligned(logits) && aligned(dlogits);
}

// Calls body(std::bool_constant<kVector>).
template <typename F>
void with_vector_choice(bool vector, F&& body) {
  if (vector)
    body(std::true_type{});
  else
    body(std::false_type{});
}

// counts[0] = number of targets that are not ignored, summed in a fixed order.
template <typename A>
__global__ void count_kernel(const int64_t* targets, int64_t rows, int64_t ignore, A* count) {
  A total = 0;
  for (int64_t r = threadIdx.x; r < rows; r += blockDim.x) total += targets[r] != ignore ? A(1) : A(0);
  total = block_sum(total);
  if (threadIdx.x == 0) *count = total;
}

}  // namespace

void cross_entropy(const Tensor& logits, const Tensor& targets, int64_t ignore_index, const Tensor& loss) {
  const int64_t rows = logits.size(0), cols = logits.size(1);
  const Tensor ids = targets.to(DType::i64).contiguous();
  const Tensor xd = logits.contiguous();
  with_float_type(logits.dtype(), "cross_entropy", [&](auto tag) {
    using T = decltype(tag);
    using A = typename Accumulate<T>::type;
    const Tensor per_row = Tensor::empty({rows + 1}, loss.dtype(), logits.device());  // last slot: the count
    cudaStream_t stream = stream_of(logits);
    count_kernel<A>
        <<<1, 1024, 0, stream>>>(ptr<const int64_t>(ids), rows, ignore_index, ptr<A>(per_row) + rows);
    if (rows > 0)
      with_vector_choice(vector_rows(xd, Tensor(), cols), [&](auto vector) {
        cross_entropy_rows<T, A, vector()><<<static_cast<unsigned>(rows), row_threads(cols), 0, stream>>>(
            ptr<const T>(xd), ptr<const int64_t>(ids), ptr<A>(per_row), cols, ignore_index);
      });
    mean_kernel<A>
        <<<1, 1024, 0, stream>>>(ptr<const A>(per_row), rows, ptr<const A>(per_row) + rows, ptr<A>(loss));
  });
  check_launch("cross_entropy");
}

void cross_entropy_backward(const Tensor& logits, const Tensor& targets, int64_t ignore_index, double grad,
                            const Tensor& dlogits) {
  const int64_t rows = logits.size(0), cols = logits.size(1);
  if (rows == 0) return;
  const Tensor ids = targets.to(DType::i64).contiguous();
  const Tensor xd = logits.contiguous();
  with_float_type(logits.dtype(), "cross_entropy_backward", [&](auto tag) {
    using T = decltype(tag);
    using A = typename Accumulate<T>::type;
    const Tensor count =
        Tensor::empty({1}, logits.dtype() == DType::f64 ? DType::f64 : DType::f32, logits.device());
    cudaStream_t stream = stream_of(logits);
    count_kernel<A><<<1, 1024, 0, stream>>>(ptr<const int64_t>(ids), rows, ignore_index, ptr<A>(count));
    with_vector_choice(vector_rows(xd, dlogits, cols), [&](auto vector) {
      cross_entropy_backward_rows<T, A, vector()>
          <<<static_cast<unsigned>(rows), row_threads(cols), 0, stream>>>(
              ptr<const T>(xd), ptr<const int64_t>(ids), ptr<T>(dlogits), cols, ignore_index,
              static_cast<A>(grad), ptr<const A>(count));
    });
  });
  check_launch("cross_entropy_backward");
}

void cross_entropy_with_grad(const Tensor& logits, const Tensor& targets, int64_t ignore_index, double grad,
                             const Tensor& loss, const Tensor& dlogits) {
  const int64_t rows = logits.size(0), cols = logits.size(1);
  const Tensor ids = targets.to(DType::i64).contiguous();
  const Tensor xd = logits.contiguous();
  with_float_type(logits.dtype(), "cross_entropy_with_grad", [&](auto tag) {
    using T = decltype(tag);
    using A = typename Accumulate<T>::type;
    const Tensor per_row = Tensor::empty({rows + 1}, loss.dtype(), logits.device());  // last slot: the count
    cudaStream_t stream = stream_of(logits);
    count_kernel<A>
        <<<1, 1024, 0, stream>>>(ptr<const int64_t>(ids), rows, ignore_index, ptr<A>(per_row) + rows);
    if (rows > 0)
      with_vector_choice(vector_rows(xd, dlogits, cols), [&](auto vector) {
        cross_entropy_with_grad_rows<T, A, vector()>
            <<<static_cast<unsigned>(rows), row_threads(cols), 0, stream>>>(
                ptr<const T>(xd), ptr<const int64_t>(ids), ptr<A>(per_row), ptr<T>(dlogits), cols,
                ignore_index, static_cast<A>(grad), ptr<const A>(per_row) + rows);
      });
    mean_kernel<A>
        <<<1, 1024, 0, stream>>>(ptr<const A>(per_row), rows, ptr<const A>(per_row) + rows, ptr<A>(loss));
  });
  check_launch("cross_entropy_with_grad");
}

}  // namespace wick::cuda
