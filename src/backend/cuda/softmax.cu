// Softmax over the last axis, one block per row. The first pass keeps a running (max, sum of exp) per thread
// (the online form, so the row is read once for the statistics), the block combines them, and the second pass
// writes exp(x − max) / sum; the second read of a row mostly hits L2. Masked columns (causal, lengths) count
// as −∞, and a fully masked row is all zeros. Optionally writes each row's log-sum-exp (attention's backward
// uses it). The backward is one block per row: dx = y·(dy − Σ y·dy), or dy − exp(y)·Σ dy for log-softmax.
#include "backend/cuda/common.cuh"
#include "backend/cuda/kernels.h"
#include "backend/cuda/row_cache.cuh"
#include "backend/cuda/softmax.h"

namespace wick::cuda {
namespace {

struct MaskArgs {
  bool causal;
  int64_t causal_offset;
  int64_t rows_per_matrix;
  const int64_t* lengths;  // null when absent
  int64_t rows_per_batch;
};

template <typename T, typename A>
__global__ void softmax_kernel(const T* x, T* y, float* lse, int64_t cols, MaskArgs mask, bool log) {
  const int64_t row = blockIdx.x;
  const T* in = x + row * cols;
  T* out = y + row * cols;
  int64_t visible = cols;
  if (mask.causal)
    visible = min(visible, max(int64_t(0), row % mask.rows_per_matrix + mask.causal_offset + 1));
  if (mask.lengths) visible = min(visible, max(int64_t(0), mask.lengths[row / mask.rows_per_batch]));
  A m = -INFINITY, s = 0;
  for (int64_t j = threadIdx.x; j < visible; j += blockDim.x) {
    const A v = load_as<A>(in + j);
    const A m_new = max(m, v);
    s = s * exp(m - m_new) + exp(v - m_new);
    m = m_new;
  }
  const A row_max = block_max(m);
  s = m == A(-INFINITY) ? A(0) : s * exp(m - row_max);
  const A row_sum = block_sum(s);
  if (visible == 0) {
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) out[j] = store_as<T>(log ? A(-INFINITY) : A(0));
    if (lse && threadIdx.x == 0) lse[row] = -INFINITY;
    return;
  }
  const A log_sum = row_max + ::log(row_sum);
  if (lse && threadIdx.x == 0) lse[row] = static_cast<float>(log_sum);
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
    A value;
    if (j < visible) {
      const A v = load_as<A>(in + j);
      value = log ? v - log_sum : exp(v - log_sum);
    } else {
      value = log ? A(-INFINITY) : A(0);
    }
    out[j] = store_as<T>(value);
  }
}

// Unmasked rows too long for the register cache: the same two passes with 16-byte loads. The second read of
// the row mostly hits L2, since few rows are in flight at a time.
template <typename T>
__global__ void softmax_vector_kernel(const T* x, T* y, float* lse, int64_t cols, bool log) {
  constexpr int E = vector_elements<T>;
  const int64_t row = blockIdx.x;
  const uint4* in = reinterpret_cast<const uint4*>(x + row * cols);
  uint4* out = reinterpret_cast<uint4*>(y + row * cols);
  const int64_t vectors = cols / E;
  float m = -INFINITY, s = 0;
  for (int64_t v = threadIdx.x; v < vectors; v += blockDim.x) {
    const uint4 raw = in[v];
    const T* e = reinterpret_cast<const T*>(&raw);
    float chunk_max = to_float(e[0]);
#pragma unroll
    for (int i = 1; i < E; ++i) chunk_max = fmaxf(chunk_max, to_float(e[i]));
    const float m_new = fmaxf(m, chunk_max);
    s *= __expf(m - m_new);
#pragma unroll
    for (int i = 0; i < E; ++i) s += __expf(to_float(e[i]) - m_new);
    m = m_new;
  }
  const float row_max = block_max(m);
  s = m == -INFINITY ? 0.0f : s * __expf(m - row_max);
  const float sum = block_sum(s);
  const float log_sum = row_max + logf(sum), inv = 1.0f / sum;
  if (lse && threadIdx.x == 0) lse[row] = log_sum;
  for (int64_t v = threadIdx.x; v < vectors; v += blockDim.x) {
    uint4 raw = in[v];
    T* e = reinterpret_cast<T*>(&raw);
#pragma unroll
    for (int i = 0; i < E; ++i) {
      const float value = to_float(e[i]);
      e[i] = from_float<T>(log ? value - log_sum : __expf(value - row_max) * inv);
    }
    out[v] = raw;
  }
}

// The same with the row held in registers (row_cache.cuh): one read, one write.
template <typename T, int K>
__global__ void __launch_bounds__(kRowCacheThreads)
    softmax_row_cache_kernel(const T* x, T* y, float* lse, int64_t cols, MaskArgs mask, bool log) {
  const int64_t row = blockIdx.x;
  const int64_t vectors = cols / vector_elements<T>;
  int64_t visible = cols;
  if (mask.causal)
    visible = min(visible, max(int64_t(0), row % mask.rows_per_matrix + mask.causal_offset + 1));
  if (mask.lengths) visible = min(visible, max(int64_t(0), mask.lengths[row / mask.rows_per_batch]));
  RowSlice<T, K> slice;
  slice.load(x + row * cols, vectors);
  constexpr int E = RowSlice<T, K>::E;
  float m = -INFINITY;
#pragma unroll
  for (int j = 0; j < K; ++j)
#pragma unroll
    for (int i = 0; i < E; ++i)
      if (slice.present(j, vectors) && slice.first_column(j) + i < visible) m = fmaxf(m, slice.v[j][i]);
  m = block_max(m);
  // One exp per element: softmax keeps exp(x − max) in place of x; log-softmax keeps x.
  float sum = 0;
#pragma unroll
  for (int j = 0; j < K; ++j)
#pragma unroll
    for (int i = 0; i < E; ++i) {
      float& v = slice.v[j][i];
      const bool seen = slice.present(j, vectors) && slice.first_column(j) + i < visible;
      const float e =
          seen ? __expf(v - m) : 0.0f;  // fast exp: its error grows with |x − max|, where the terms are tiny
      sum += e;
      if (!log) v = e;
    }
  sum = block_sum(sum);
  const float log_sum = m + logf(sum), inv = sum > 0 ? 1.0f / sum : 0.0f;  // no visible column: all zeros
  if (lse && threadIdx.x == 0) lse[row] = visible == 0 ? -INFINITY : log_sum;
#pragma unroll
  for (int j = 0; j < K; ++j)
#pragma unroll
    for (int i = 0; i < E; ++i) {
      const bool seen = slice.first_column(j) + i < visible;
      float& v = slice.v[j][i];
      v = log ? (seen ? v - log_sum : -INFINITY) : v * inv;
    }
  slice.store(y + row * cols, vectors);
}

template <typename T, typename A>
__global__ void softmax_backward_kernel(const T* y, const T* dy, T* dx, int64_t cols, bool log) {
  const int64_t row = blockIdx.x;
  const T* yr = y + row * cols;
  const T* gr = dy + row * cols;
  T* dr = dx + row * cols;
  A dot = 0;
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x)
    dot += log ? load_as<A>(gr + j) : load_as<A>(yr + j) * load_as<A>(gr + j);
  dot = block_sum(dot);
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
    const A yv = load_as<A>(yr + j), gv = load_as<A>(gr + j);
    dr[j] = store_as<T>(log ? gv - exp(yv) * dot : yv * (gv - dot));
  }
}

// Runs `body(dense_out)` into y directly when y is dense, else into a temporary copied to y afterwards.
template <typename Body>
void into(const Tensor& y, Body&& body) {
  if (y.is_contiguous()) {
    body(y);
  } else {
    Tensor dense = Tensor::empty(y.shape(), y.dtype(), y.device());
    body(dense);
    y.copy_(dense);
  }
}

}  // namespace

namespace {

bool aligned(const void* p) {
  return reinterpret_cast<uintptr_t>(p) % 16 == 0;
}

void launch_softmax(const Tensor& x, const Tensor& y, const ops::SoftmaxMask& mask, bool log,
                    const Tensor& lse, SoftmaxKernel kernel) {
  const int64_t cols = x.size(-1);
  const int64_t rows = cols == 0 ? 0 : x.numel() / cols;
  if (rows == 0) return;
  if (rows > INT32_MAX) raise("softmax", std::to_string(rows) + " rows exceed the CUDA grid limit");
  DeviceGuard guard(x.device().index);
  const Tensor xd = x.contiguous();
  const Tensor lengths = mask.lengths.defined() ? mask.lengths.to(DType::i64).contiguous() : Tensor();
  MaskArgs args{mask.causal, mask.causal_offset, x.dim() >= 2 ? x.size(-2) : 1,
                lengths.defined() ? ptr<const int64_t>(lengths) : nullptr,
                rows / std::max<int64_t>(x.size(0), 1)};
  float* lse_ptr = lse.defined() ? ptr<float>(lse) : nullptr;
  into(y, [&](const Tensor& out) {
    with_float_type(x.dtype(), "softmax", [&](auto tag) {
      using T = decltype(tag);
      using A = typename Accumulate<T>::type;
      if constexpr (!std::is_same_v<T, double>) {
        if (kernel == SoftmaxKernel::row_cache) {
          const RowCacheLaunch cached = row_cache_launch(cols, sizeof(T), {xd.data_ptr(), out.data_ptr()});
          with_vectors_per_thread(cached.vectors_per_thread, [&](auto k) {
            softmax_row_cache_kernel<T, decltype(k)::value>
                <<<static_cast<unsigned>(rows), cached.threads, 0, stream_of(x)>>>(
                    ptr<const T>(xd), ptr<T>(out), lse_ptr, cols, args, log);
          });
          return;
        }
        if (kernel == SoftmaxKernel::vector) {
          // Wide blocks for long rows: fewer rows in flight, so their second read still finds them in L2.
          const int threads = cols * static_cast<int64_t>(sizeof(T)) > 48 * 1024 ? 1024 : 512;
          softmax_vector_kernel<T><<<static_cast<unsigned>(rows), threads, 0, stream_of(x)>>>(
              ptr<const T>(xd), ptr<T>(out), lse_ptr, cols, log);
          return;
        }
      }
      softmax_kernel<T, A><<<static_cast<unsigned>(rows), row_threads(cols), 0, stream_of(x)>>>(
          ptr<const T>(xd), ptr<T>(out), lse_ptr, cols, args, log);
    });
  });
  check_launch("softmax");
}

}  // namespace

bool softmax_applies(SoftmaxKernel kernel, const Tensor& x, const ops::SoftmaxMask& mask) {
  if (kernel == SoftmaxKernel::plain) return true;
  if (x.dtype() == DType::f64 || !x.is_contiguous() || x.numel() == 0 || !aligned(x.data_ptr())) return false;
  const int64_t cols = x.size(-1);
  if (kernel == SoftmaxKernel::row_cache)
    return row_cache_launch(cols, dtype_size(x.dtype()), {}).threads > 0;
  return !mask.causal && !mask.lengths.defined() &&
         cols % (16 / static_cast<int64_t>(dtype_size(x.dtype()))) == 0;
}

// A non-dense output is written through a dense temporary (see into()), which is aligned.
void softmax(const Tensor& x, const Tensor& y, const ops::SoftmaxMask& mask, bool log, SoftmaxKernel kernel) {
  launch_softmax(x, y, mask, log, Tensor(), kernel);
}

void softmax_rows(const Tensor& x, const Tensor& y, const ops::SoftmaxMask& mask, bool log,
                  const Tensor& lse) {
  SoftmaxKernel kernel = SoftmaxKernel::plain;
  for (SoftmaxKernel candidate : {SoftmaxKernel::row_cache, SoftmaxKernel::vector}) {
    if (softmax_applies(candidate, x, mask) && (!y.is_contiguous() || aligned(y.data_ptr()))) {
      kernel = candidate;
      break;
    }
  }
  launch_softmax(x, y, mask, log, lse, kernel);
}

void softmax_backward(const Tensor& y, const Tensor& dy, const Tensor& dx, bool log) {
  const int64_t cols = y.size(-1);
  const int64_t rows = cols == 0 ? 0 : y.numel() / cols;
  if (rows == 0) return;
  DeviceGuard guard(y.device().index);
  const Tensor yd = y.contiguous(), gd = dy.contiguous();
  into(dx, [&](const Tensor& out) {
    with_float_type(y.dtype(), "softmax_backward", [&](auto tag) {
      using T = decltype(tag);
      using A = typename Accumulate<T>::type;
      softmax_backward_kernel<T, A><<<static_cast<unsigned>(rows), row_threads(cols), 0, stream_of(y)>>>(
          ptr<const T>(yd), ptr<const T>(gd), ptr<T>(out), cols, log);
    });
  });
  check_launch("softmax_backward");
}

}  // namespace wick::cuda
