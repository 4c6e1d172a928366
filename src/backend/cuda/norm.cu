// RMSNorm and LayerNorm over the last axis, one block per row: a block reduction for the statistics, then the
// write (the second read of the row hits L1/L2); short LayerNorm rows take one warp each instead. The fused
// residual form adds the residual, stores the rounded sum, and normalizes that stored value, exactly as the
// unfused "sum = x + r; rms_norm(sum)" would. Backward: dx per row in one block; the weight/bias gradients
// are summed deterministically in two stages — each of G blocks owns a strip of rows and accumulates its
// partial sums in its own row of a [G, cols] buffer, then one thread per column adds the G partials in a
// fixed order.
#include "backend/cuda/common.cuh"
#include "backend/cuda/kernels.h"
#include "backend/cuda/layer_norm_row.cuh"
#include "backend/cuda/row_cache.cuh"
#include "backend/cuda/row_stride.h"

namespace wick::cuda {
namespace {

template <typename T, typename A>
__global__ void rms_norm_kernel(const T* x, const T* residual, const T* weight, T* y, T* sum_out,
                                int64_t cols, int64_t y_stride, A eps) {
  const int64_t row = blockIdx.x;
  const T* xr = x + row * cols;
  A sum_sq = 0;
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
    A v = load_as<A>(xr + j);
    if (residual) {
      const T stored = store_as<T>(v + load_as<A>(residual + row * cols + j));
      sum_out[row * cols + j] = stored;
      v = load_as<A>(&stored);
    }
    sum_sq += v * v;
  }
  sum_sq = block_sum(sum_sq);
  const A rstd = A(1) / sqrt(sum_sq / A(cols) + eps);
  const T* src = residual ? sum_out + row * cols : xr;  // each thread re-reads only what it wrote
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x)
    y[row * y_stride + j] = store_as<T>(load_as<A>(src + j) * rstd * load_as<A>(weight + j));
}

// The same with the row (and residual) held in registers (row_cache.cuh): one read of each input, one write.
template <typename T, int K>
__global__ void __launch_bounds__(kRowCacheThreads)
    rms_norm_row_cache_kernel(const T* x, const T* residual, const T* weight, T* y, T* sum_out, int64_t cols,
                              int64_t y_stride, float eps) {
  const int64_t row = blockIdx.x;
  const int64_t vectors = cols / vector_elements<T>;
  constexpr int E = RowSlice<T, K>::E;
  RowSlice<T, K> slice;
  slice.load(x + row * cols, vectors);
  if (residual) {
    RowSlice<T, K> other;
    other.load(residual + row * cols, vectors);
#pragma unroll
    for (int j = 0; j < K; ++j)
#pragma unroll
      for (int i = 0; i < E; ++i) slice.v[j][i] = to_float(from_float<T>(slice.v[j][i] + other.v[j][i]));
    slice.store(sum_out + row * cols, vectors);
  }
  float sum_sq = 0;
#pragma unroll
  for (int j = 0; j < K; ++j)
#pragma unroll
    for (int i = 0; i < E; ++i)
      if (slice.present(j, vectors)) sum_sq += slice.v[j][i] * slice.v[j][i];
  const float rstd = rsqrtf(block_sum(sum_sq) / static_cast<float>(cols) + eps);
  RowSlice<T, K> w;
  w.load(weight, vectors);
#pragma unroll
  for (int j = 0; j < K; ++j)
#pragma unroll
    for (int i = 0; i < E; ++i) slice.v[j][i] = slice.v[j][i] * rstd * w.v[j][i];
  slice.store(y + row * y_stride, vectors);
}

template <typename T, typename A>
__global__ void rms_norm_backward_kernel(const T* x, const T* weight, const T* dy, const T* residual, T* dx,
                                         A* partial, int64_t rows, int64_t cols, A eps) {
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const T* xr = x + row * cols;
    const T* gr = dy + row * cols;
    A sum_sq = 0, dot = 0;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
      const A xv = load_as<A>(xr + j);
      sum_sq += xv * xv;
      dot += load_as<A>(gr + j) * load_as<A>(weight + j) * xv;
    }
    sum_sq = block_sum(sum_sq);
    dot = block_sum(dot);
    const A rstd = A(1) / sqrt(sum_sq / A(cols) + eps);
    const A coef = dot * rstd * rstd / A(cols);
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
      const A xv = load_as<A>(xr + j), gv = load_as<A>(gr + j);
      const A from_residual = residual ? load_as<A>(residual + row * cols + j) : A(0);
      dx[row * cols + j] = store_as<T>(rstd * (gv * load_as<A>(weight + j) - xv * coef) + from_residual);
      if (partial) partial[blockIdx.x * cols + j] += gv * xv * rstd;
    }
  }
}

// RMSNorm's input gradient for a frozen weight, rows of at most 32·K 16-byte vectors: one warp per row
// holding x and dy in registers, eight rows a block. dx = rstd·(dy·w − x·rstd²·Σ(dy·w·x)/cols) (+ the
// residual branch's gradient), as the kernel above.
constexpr int kRmsBackwardWarps = 8;

template <typename T, int K>
__global__ void __launch_bounds__(kRmsBackwardWarps * 32)
    rms_norm_backward_warp_kernel(const T* x, const T* weight, const T* dy, const T* residual, T* dx,
                                  int64_t rows, int64_t cols, int64_t dy_stride, float eps) {
  constexpr int E = vector_elements<T>;
  const int64_t row = blockIdx.x * int64_t(kRmsBackwardWarps) + threadIdx.x / 32;
  if (row >= rows) return;
  const int lane = threadIdx.x % 32;
  const int64_t vectors = cols / E;
  float xv[K][E], gw[K][E];
  float sum_sq = 0, dot = 0;
#pragma unroll
  for (int j = 0; j < K; ++j) {
    const int64_t v = lane + 32 * j;
    if (v >= vectors) continue;
    float w[E];
    load_vector(x + row * cols, v, xv[j]);
    load_vector(dy + row * dy_stride, v, gw[j]);
    load_vector(weight, v, w);
#pragma unroll
    for (int e = 0; e < E; ++e) {
      gw[j][e] *= w[e];
      sum_sq += xv[j][e] * xv[j][e];
      dot += gw[j][e] * xv[j][e];
    }
  }
  for (int offset = 16; offset > 0; offset /= 2) {
    sum_sq += __shfl_xor_sync(0xffffffffu, sum_sq, offset);
    dot += __shfl_xor_sync(0xffffffffu, dot, offset);
  }
  const float rstd = 1.0f / sqrtf(sum_sq / static_cast<float>(cols) + eps);
  const float coef = dot * rstd * rstd / static_cast<float>(cols);
#pragma unroll
  for (int j = 0; j < K; ++j) {
    const int64_t v = lane + 32 * j;
    if (v >= vectors) continue;
    float r[E] = {};
    if (residual) load_vector(residual + row * cols, v, r);
#pragma unroll
    for (int e = 0; e < E; ++e) r[e] += rstd * (gw[j][e] - xv[j][e] * coef);
    store_vector(dx + row * cols, v, r);
  }
}

template <typename T, typename A>
__global__ void layer_norm_kernel(const T* x, const T* weight, const T* bias, T* y, int64_t cols, A eps) {
  const int64_t row = blockIdx.x;
  const T* xr = x + row * cols;
  A sum = 0;
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) sum += load_as<A>(xr + j);
  const A mean = block_sum(sum) / A(cols);
  A var = 0;
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
    const A d = load_as<A>(xr + j) - mean;
    var += d * d;
  }
  const A rstd = A(1) / sqrt(block_sum(var) / A(cols) + eps);
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
    A v = (load_as<A>(xr + j) - mean) * rstd;
    if (weight) v *= load_as<A>(weight + j);
    if (bias) v += load_as<A>(bias + j);
    y[row * cols + j] = store_as<T>(v);
  }
}

// LayerNorm of short rows (at most 32·K 16-byte vectors, e.g. BERT's 384 or 768 columns): one warp per row
// holding it in registers, eight rows a block, warp-shuffle reductions only. One read and one write per row.
constexpr int kLayerNormWarps = 8;

template <typename T, int K>
__global__ void __launch_bounds__(kLayerNormWarps * 32)
    layer_norm_warp_kernel(const T* x, const T* weight, const T* bias, T* y, int64_t rows, int64_t cols,
                           float eps) {
  constexpr int E = vector_elements<T>;
  const int64_t row = blockIdx.x * int64_t(kLayerNormWarps) + threadIdx.x / 32;
  if (row >= rows) return;
  const int lane = threadIdx.x % 32;
  const int64_t vectors = cols / E;
  float v[K][E];
#pragma unroll
  for (int j = 0; j < K; ++j)
    if (lane + 32 * j < vectors) load_vector(x + row * cols, lane + 32 * j, v[j]);
  layer_norm_warp_row<T, K>(v, vectors, cols, weight, bias, y + row * cols, eps);
}

template <typename T, typename A>
__global__ void layer_norm_backward_kernel(const T* x, const T* weight, const T* dy, T* dx, A* partial_w,
                                           A* partial_b, int64_t rows, int64_t cols, A eps) {
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const T* xr = x + row * cols;
    const T* gr = dy + row * cols;
    A sum = 0;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) sum += load_as<A>(xr + j);
    const A mean = block_sum(sum) / A(cols);
    A var = 0;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
      const A d = load_as<A>(xr + j) - mean;
      var += d * d;
    }
    const A rstd = A(1) / sqrt(block_sum(var) / A(cols) + eps);
    A mean_g = 0, mean_gx = 0;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
      const A gw = load_as<A>(gr + j) * (weight ? load_as<A>(weight + j) : A(1));
      mean_g += gw;
      mean_gx += gw * (load_as<A>(xr + j) - mean) * rstd;
    }
    mean_g = block_sum(mean_g) / A(cols);
    mean_gx = block_sum(mean_gx) / A(cols);
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
      const A gv = load_as<A>(gr + j);
      const A xhat = (load_as<A>(xr + j) - mean) * rstd;
      const A gw = gv * (weight ? load_as<A>(weight + j) : A(1));
      dx[row * cols + j] = store_as<T>(rstd * (gw - mean_g - xhat * mean_gx));
      if (partial_w) partial_w[blockIdx.x * cols + j] += gv * xhat;
      if (partial_b) partial_b[blockIdx.x * cols + j] += gv;
    }
  }
}

// out[j] = Σ_g partial[g, j], in order of g.
template <typename A>
__global__ void sum_partials_kernel(const A* partial, A* out, int64_t groups, int64_t cols) {
  const int64_t j = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (j >= cols) return;
  A total = 0;
  for (int64_t g = 0; g < groups; ++g) total += partial[g * cols + j];
  out[j] = total;
}

int64_t row_count(const Tensor& x) {
  return x.size(-1) == 0 ? 0 : x.numel() / x.size(-1);
}

int64_t partial_groups(const Tensor& x) {
  int sms = 0;
  check(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, x.device().index), "norm",
        "cudaDeviceGetAttribute");
  return std::max<int64_t>(1, std::min<int64_t>(row_count(x), 2 * sms));
}

// Sums partial [groups, cols] into `out` (f32 or f64, any layout).
void reduce_partials(const Tensor& partial, const Tensor& out) {
  const int64_t groups = partial.size(0), cols = partial.size(1);
  Tensor dense = out.is_contiguous() ? out : Tensor::empty(out.shape(), out.dtype(), out.device());
  if (out.dtype() == DType::f64) {
    sum_partials_kernel<double><<<ceil_div(cols, 256), 256, 0, stream_of(out)>>>(
        ptr<const double>(partial), ptr<double>(dense), groups, cols);
  } else {
    sum_partials_kernel<float><<<ceil_div(cols, 256), 256, 0, stream_of(out)>>>(
        ptr<const float>(partial), ptr<float>(dense), groups, cols);
  }
  check_launch("norm backward");
  if (!dense.is_contiguous() || dense.data_ptr() != out.data_ptr()) out.copy_(dense);
}

}  // namespace

bool rms_norm_row_cache_applies(const Tensor& x, const Tensor& y) {
  const int64_t y_stride = row_stride(y);
  return x.dtype() != DType::f64 && x.is_contiguous() && x.numel() > 0 && y_stride > 0 &&
         (y_stride * static_cast<int64_t>(dtype_size(y.dtype()))) % 16 == 0 &&
         row_cache_launch(x.size(-1), dtype_size(x.dtype()), {x.data_ptr(), y.data_ptr()}).threads > 0;
}

void rms_norm(const Tensor& x, const Tensor& weight, double eps, const Tensor& y, bool row_cache) {
  rms_norm_residual(x, Tensor(), weight, eps, y, Tensor(), row_cache);
}

void rms_norm_residual(const Tensor& x, const Tensor& residual, const Tensor& weight, double eps,
                       const Tensor& y, const Tensor& sum, bool row_cache) {
  const int64_t rows = row_count(x), cols = x.size(-1);
  if (rows == 0) return;
  DeviceGuard guard(x.device().index);
  const Tensor xd = x.contiguous(), wd = weight.to(x.dtype()).contiguous();
  const Tensor rd = residual.defined() ? residual.contiguous() : Tensor();
  // y is written through its row stride (the left columns of a wider matrix, say), or through a copy.
  const bool y_rows = row_stride(y) > 0;
  const Tensor yd = y_rows ? y : Tensor::empty(y.shape(), y.dtype(), y.device());
  const int64_t y_stride = row_stride(yd);
  const RowCacheLaunch cached = row_cache ? row_cache_launch(cols, dtype_size(x.dtype()),
                                                             {xd.data_ptr(), wd.data_ptr(), yd.data_ptr(),
                                                              rd.defined() ? rd.data_ptr() : nullptr,
                                                              sum.defined() ? sum.data_ptr() : nullptr})
                                          : RowCacheLaunch{};
  with_float_type(x.dtype(), "rms_norm", [&](auto tag) {
    using T = decltype(tag);
    using A = typename Accumulate<T>::type;
    const T* r = rd.defined() ? ptr<const T>(rd) : nullptr;
    T* s = sum.defined() ? ptr<T>(sum) : nullptr;
    if constexpr (!std::is_same_v<T, double>) {
      if (cached.threads > 0) {
        with_vectors_per_thread(cached.vectors_per_thread, [&](auto k) {
          rms_norm_row_cache_kernel<T, decltype(k)::value>
              <<<static_cast<unsigned>(rows), cached.threads, 0, stream_of(x)>>>(
                  ptr<const T>(xd), r, ptr<const T>(wd), ptr<T>(yd), s, cols, y_stride,
                  static_cast<float>(eps));
        });
        return;
      }
    }
    rms_norm_kernel<T, A><<<static_cast<unsigned>(rows), row_threads(cols), 0, stream_of(x)>>>(
        ptr<const T>(xd), r, ptr<const T>(wd), ptr<T>(yd), s, cols, y_stride, static_cast<A>(eps));
  });
  check_launch("rms_norm");
  if (!y_rows) y.copy_(yd);
}

void rms_norm_backward(const Tensor& x, const Tensor& weight, const Tensor& dy, const Tensor& residual_grad,
                       double eps, const Tensor& dx, const Tensor& dweight) {
  const int64_t rows = row_count(x), cols = x.size(-1);
  DeviceGuard guard(x.device().index);
  if (rows == 0) {
    if (dweight.defined()) dweight.fill_(0.0);
    return;
  }
  const Tensor xd = x.contiguous(), wd = weight.to(x.dtype()).contiguous();
  const Tensor rd = residual_grad.defined() ? residual_grad.to(x.dtype()).contiguous() : Tensor();
  // Without a weight gradient (a frozen weight) there are no partial sums to keep: one block per row.
  const bool weight_grad = dweight.defined();
  const int64_t groups = weight_grad ? partial_groups(x) : std::min<int64_t>(rows, 65535);
  const Tensor partial = weight_grad ? Tensor::zeros({groups, cols}, dweight.dtype(), x.device()) : Tensor();
  const int64_t per_vector = x.dtype() == DType::f64 ? 0 : 16 / static_cast<int64_t>(dtype_size(x.dtype()));
  const auto aligned = [](const Tensor& t) { return reinterpret_cast<uintptr_t>(t.data_ptr()) % 16 == 0; };
  bool warp_rows = !weight_grad && per_vector > 0 && cols % per_vector == 0 && cols / per_vector <= 32 * 8;
  for (const Tensor* t : {&xd, &wd, &rd, &dx})
    if (t->defined() && (!aligned(*t) || !t->is_contiguous())) warp_rows = false;
  // The warp kernel reads dy through its row stride (a column block of a wider matrix, say), not a copy.
  const int64_t dy_rows = row_stride(dy);
  const bool dy_direct =
      warp_rows && dy.dtype() == x.dtype() && dy_rows > 0 && dy_rows % per_vector == 0 && aligned(dy);
  const Tensor gd = dy_direct ? dy : dy.to(x.dtype()).contiguous();
  if (!aligned(gd)) warp_rows = false;
  if (warp_rows) {
    with_float_type(x.dtype(), "rms_norm_backward", [&](auto tag) {
      using T = decltype(tag);
      if constexpr (!std::is_same_v<T, double>) {
        const auto blocks = static_cast<unsigned>(ceil_div(rows, int64_t{kRmsBackwardWarps}));
        with_vectors_per_thread(layer_norm_warp_vectors_per_lane(cols / per_vector), [&](auto k) {
          rms_norm_backward_warp_kernel<T, decltype(k)::value>
              <<<blocks, kRmsBackwardWarps * 32, 0, stream_of(x)>>>(
                  ptr<const T>(xd), ptr<const T>(wd), ptr<const T>(gd),
                  rd.defined() ? ptr<const T>(rd) : nullptr, ptr<T>(dx), rows, cols,
                  dy_direct ? dy_rows : cols, static_cast<float>(eps));
        });
      }
    });
    check_launch("rms_norm_backward");
    return;
  }
  with_float_type(x.dtype(), "rms_norm_backward", [&](auto tag) {
    using T = decltype(tag);
    using A = typename Accumulate<T>::type;
    rms_norm_backward_kernel<T, A><<<static_cast<unsigned>(groups), row_threads(cols), 0, stream_of(x)>>>(
        ptr<const T>(xd), ptr<const T>(wd), ptr<const T>(gd), rd.defined() ? ptr<const T>(rd) : nullptr,
        ptr<T>(dx), weight_grad ? ptr<A>(partial) : nullptr, rows, cols, static_cast<A>(eps));
  });
  check_launch("rms_norm_backward");
  if (weight_grad) reduce_partials(partial, dweight);
}

void layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps, const Tensor& y) {
  const int64_t rows = row_count(x), cols = x.size(-1);
  if (rows == 0) return;
  DeviceGuard guard(x.device().index);
  const Tensor xd = x.contiguous();
  const Tensor wd = weight.defined() ? weight.to(x.dtype()).contiguous() : Tensor();
  const Tensor bd = bias.defined() ? bias.to(x.dtype()).contiguous() : Tensor();
  // Warp-per-row kernel: rows of at most 32·8 vectors, everything 16-byte aligned.
  const int64_t per_vector = x.dtype() == DType::f64 ? 0 : 16 / static_cast<int64_t>(dtype_size(x.dtype()));
  bool aligned = per_vector > 0 && cols % per_vector == 0 && cols / per_vector <= 32 * 8;
  for (const Tensor* t : {&xd, &wd, &bd, &y})
    if (t->defined() && reinterpret_cast<uintptr_t>(t->data_ptr()) % 16 != 0) aligned = false;
  with_float_type(x.dtype(), "layer_norm", [&](auto tag) {
    using T = decltype(tag);
    using A = typename Accumulate<T>::type;
    if constexpr (!std::is_same_v<T, double>) {
      if (aligned) {
        const int64_t vectors = cols / per_vector;
        const int k = layer_norm_warp_vectors_per_lane(vectors);
        const auto blocks = static_cast<unsigned>(ceil_div(rows, int64_t{kLayerNormWarps}));
        with_vectors_per_thread(k, [&](auto kt) {
          layer_norm_warp_kernel<T, decltype(kt)::value><<<blocks, kLayerNormWarps * 32, 0, stream_of(x)>>>(
              ptr<const T>(xd), wd.defined() ? ptr<const T>(wd) : nullptr,
              bd.defined() ? ptr<const T>(bd) : nullptr, ptr<T>(y), rows, cols, static_cast<float>(eps));
        });
        return;
      }
    }
    layer_norm_kernel<T, A><<<static_cast<unsigned>(rows), row_threads(cols), 0, stream_of(x)>>>(
        ptr<const T>(xd), wd.defined() ? ptr<const T>(wd) : nullptr,
        bd.defined() ? ptr<const T>(bd) : nullptr, ptr<T>(y), cols, static_cast<A>(eps));
  });
  check_launch("layer_norm");
}

void layer_norm_backward(const Tensor& x, const Tensor& weight, const Tensor& dy, double eps,
                         const Tensor& dx, const Tensor& dweight, const Tensor& dbias) {
  const int64_t rows = row_count(x), cols = x.size(-1);
  DeviceGuard guard(x.device().index);
  if (rows == 0) {
    if (dweight.defined()) dweight.fill_(0.0);
    if (dbias.defined()) dbias.fill_(0.0);
    return;
  }
  const Tensor xd = x.contiguous(), gd = dy.to(x.dtype()).contiguous();
  const Tensor wd = weight.defined() ? weight.to(x.dtype()).contiguous() : Tensor();
  const DType acc = x.dtype() == DType::f64 ? DType::f64 : DType::f32;
  const int64_t groups = partial_groups(x);
  const Tensor pw = dweight.defined() ? Tensor::zeros({groups, cols}, acc, x.device()) : Tensor();
  const Tensor pb = dbias.defined() ? Tensor::zeros({groups, cols}, acc, x.device()) : Tensor();
  with_float_type(x.dtype(), "layer_norm_backward", [&](auto tag) {
    using T = decltype(tag);
    using A = typename Accumulate<T>::type;
    layer_norm_backward_kernel<T, A><<<static_cast<unsigned>(groups), row_threads(cols), 0, stream_of(x)>>>(
        ptr<const T>(xd), wd.defined() ? ptr<const T>(wd) : nullptr, ptr<const T>(gd), ptr<T>(dx),
        pw.defined() ? ptr<A>(pw) : nullptr, pb.defined() ? ptr<A>(pb) : nullptr, rows, cols,
        static_cast<A>(eps));
  });
  check_launch("layer_norm_backward");
  if (dweight.defined()) reduce_partials(pw, dweight);
  if (dbias.defined()) reduce_partials(pb, dbias);
}

}  // namespace wick::cuda
