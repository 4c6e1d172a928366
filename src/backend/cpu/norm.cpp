// RMSNorm and LayerNorm over the last axis. Forward: one pass per row for the statistics, one to write.
// Backward: rows in parallel for dx, then columns in parallel for the weight/bias sums (no write races).
#include <cmath>
#include <vector>

#include "backend/cpu/compute.h"
#include "backend/cpu/kernels.h"
#include "core/parallel.h"

namespace wick::cpu {
namespace {

int64_t grain_for(int64_t cols) {
  return std::max<int64_t>(1, 16384 / std::max<int64_t>(cols, 1));
}

template <typename T>
void rms_norm_typed(const Tensor& x, const Tensor& weight, double eps, const Tensor& y) {
  const Tensor xd = dense<T>(x);
  const Tensor wd = dense<T>(weight);
  OutputBuffer<T> out(y);
  const int64_t cols = x.size(-1);
  const int64_t rows = cols == 0 ? 0 : x.numel() / cols;
  const T* src = xd.data<T>();
  const T* w = wd.data<T>();
  T* dst = out.data();
  parallel_for(rows, grain_for(cols), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const T* row = src + r * cols;
      T sum_sq = 0;
      for (int64_t j = 0; j < cols; ++j) sum_sq += row[j] * row[j];
      const T rstd = T(1) / std::sqrt(sum_sq / static_cast<T>(cols) + static_cast<T>(eps));
      for (int64_t j = 0; j < cols; ++j) dst[r * cols + j] = row[j] * rstd * w[j];
    }
  });
  out.commit();
}

template <typename T>
void rms_norm_backward_typed(const Tensor& x, const Tensor& weight, const Tensor& dy,
                             const Tensor& residual_grad, double eps, const Tensor& dx,
                             const Tensor& dweight) {
  const Tensor xd = dense<T>(x);
  const Tensor wd = dense<T>(weight);
  const Tensor gd = dense<T>(dy);
  const Tensor rd = residual_grad.defined() ? dense<T>(residual_grad) : Tensor();
  const T* residual = rd.defined() ? rd.data<T>() : nullptr;
  OutputBuffer<T> out(dx);
  const int64_t cols = x.size(-1);
  const int64_t rows = cols == 0 ? 0 : x.numel() / cols;
  const T* xs = xd.data<T>();
  const T* w = wd.data<T>();
  const T* g = gd.data<T>();
  T* d = out.data();
  std::vector<T> rstd(static_cast<size_t>(rows));
  parallel_for(rows, grain_for(cols), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const T* xr = xs + r * cols;
      const T* gr = g + r * cols;
      T sum_sq = 0, dot = 0;
      for (int64_t j = 0; j < cols; ++j) {
        sum_sq += xr[j] * xr[j];
        dot += gr[j] * w[j] * xr[j];
      }
      const T rs = T(1) / std::sqrt(sum_sq / static_cast<T>(cols) + static_cast<T>(eps));
      rstd[r] = rs;
      // dx = rstd·(g·w − x̂·mean(g·w·x̂)), x̂ = x·rstd
      const T coef = dot * rs * rs / static_cast<T>(cols);
      for (int64_t j = 0; j < cols; ++j)
        d[r * cols + j] = rs * (gr[j] * w[j] - xr[j] * coef) + (residual ? residual[r * cols + j] : T(0));
    }
  });
  out.commit();
  if (!dweight.defined()) return;  // a frozen weight: no gradient asked for
  OutputBuffer<T> dw(dweight);
  T* dws = dw.data();
  parallel_for(cols, 64, [&](int64_t begin, int64_t end) {
    for (int64_t j = begin; j < end; ++j) dws[j] = 0;
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = begin; j < end; ++j) dws[j] += g[r * cols + j] * xs[r * cols + j] * rstd[r];
  });
  dw.commit();
}

template <typename T>
void layer_norm_typed(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps,
                      const Tensor& y) {
  const Tensor xd = dense<T>(x);
  const Tensor wd = weight.defined() ? dense<T>(weight) : Tensor();
  const Tensor bd = bias.defined() ? dense<T>(bias) : Tensor();
  OutputBuffer<T> out(y);
  const int64_t cols = x.size(-1);
  const int64_t rows = cols == 0 ? 0 : x.numel() / cols;
  const T* src = xd.data<T>();
  const T* w = wd.defined() ? wd.data<T>() : nullptr;
  const T* b = bd.defined() ? bd.data<T>() : nullptr;
  T* dst = out.data();
  parallel_for(rows, grain_for(cols), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const T* row = src + r * cols;
      T mean = 0;
      for (int64_t j = 0; j < cols; ++j) mean += row[j];
      mean /= static_cast<T>(cols);
      T var = 0;
      for (int64_t j = 0; j < cols; ++j) var += (row[j] - mean) * (row[j] - mean);
      const T rstd = T(1) / std::sqrt(var / static_cast<T>(cols) + static_cast<T>(eps));
      for (int64_t j = 0; j < cols; ++j) {
        T v = (row[j] - mean) * rstd;
        if (w) v *= w[j];
        if (b) v += b[j];
        dst[r * cols + j] = v;
      }
    }
  });
  out.commit();
}

template <typename T>
void layer_norm_backward_typed(const Tensor& x, const Tensor& weight, const Tensor& dy, double eps,
                               const Tensor& dx, const Tensor& dweight, const Tensor& dbias) {
  const Tensor xd = dense<T>(x);
  const Tensor wd = weight.defined() ? dense<T>(weight) : Tensor();
  const Tensor gd = dense<T>(dy);
  OutputBuffer<T> out(dx);
  const int64_t cols = x.size(-1);
  const int64_t rows = cols == 0 ? 0 : x.numel() / cols;
  const T* xs = xd.data<T>();
  const T* w = wd.defined() ? wd.data<T>() : nullptr;
  const T* g = gd.data<T>();
  T* d = out.data();
  std::vector<T> means(static_cast<size_t>(rows)), rstds(static_cast<size_t>(rows));
  parallel_for(rows, grain_for(cols), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const T* xr = xs + r * cols;
      const T* gr = g + r * cols;
      T mean = 0;
      for (int64_t j = 0; j < cols; ++j) mean += xr[j];
      mean /= static_cast<T>(cols);
      T var = 0;
      for (int64_t j = 0; j < cols; ++j) var += (xr[j] - mean) * (xr[j] - mean);
      const T rstd = T(1) / std::sqrt(var / static_cast<T>(cols) + static_cast<T>(eps));
      means[r] = mean;
      rstds[r] = rstd;
      // dx = rstd·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂)), ĝ = g·w
      T mean_g = 0, mean_gx = 0;
      for (int64_t j = 0; j < cols; ++j) {
        const T gw = w ? gr[j] * w[j] : gr[j];
        mean_g += gw;
        mean_gx += gw * (xr[j] - mean) * rstd;
      }
      mean_g /= static_cast<T>(cols);
      mean_gx /= static_cast<T>(cols);
      for (int64_t j = 0; j < cols; ++j) {
        const T gw = w ? gr[j] * w[j] : gr[j];
        d[r * cols + j] = rstd * (gw - mean_g - (xr[j] - mean) * rstd * mean_gx);
      }
    }
  });
  out.commit();
  if (dweight.defined()) {
    OutputBuffer<T> dw(dweight);
    T* dws = dw.data();
    parallel_for(cols, 64, [&](int64_t begin, int64_t end) {
      for (int64_t j = begin; j < end; ++j) dws[j] = 0;
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t j = begin; j < end; ++j)
          dws[j] += g[r * cols + j] * (xs[r * cols + j] - means[r]) * rstds[r];
    });
    dw.commit();
  }
  if (dbias.defined()) {
    OutputBuffer<T> db(dbias);
    T* dbs = db.data();
    parallel_for(cols, 64, [&](int64_t begin, int64_t end) {
      for (int64_t j = begin; j < end; ++j) dbs[j] = 0;
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t j = begin; j < end; ++j) dbs[j] += g[r * cols + j];
    });
    db.commit();
  }
}

}  // namespace

void rms_norm(const Tensor& x, const Tensor& weight, double eps, const Tensor& y) {
  with_compute_type(x.dtype(), [&](auto tag) { rms_norm_typed<decltype(tag)>(x, weight, eps, y); });
}

void rms_norm_backward(const Tensor& x, const Tensor& weight, const Tensor& dy, const Tensor& residual_grad,
                       double eps, const Tensor& dx, const Tensor& dweight) {
  with_compute_type(x.dtype(), [&](auto tag) {
    rms_norm_backward_typed<decltype(tag)>(x, weight, dy, residual_grad, eps, dx, dweight);
  });
}

void layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps, const Tensor& y) {
  with_compute_type(x.dtype(), [&](auto tag) { layer_norm_typed<decltype(tag)>(x, weight, bias, eps, y); });
}

void layer_norm_backward(const Tensor& x, const Tensor& weight, const Tensor& dy, double eps,
                         const Tensor& dx, const Tensor& dweight, const Tensor& dbias) {
  with_compute_type(x.dtype(), [&](auto tag) {
    layer_norm_backward_typed<decltype(tag)>(x, weight, dy, eps, dx, dweight, dbias);
  });
}

}  // namespace wick::cpu
