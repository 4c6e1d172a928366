// Softmax / log-softmax over one axis. Other axes are moved last by a transposed view; each row is then a
// dense run: max, sum of exp(x − max), normalize. Masked columns count as −∞.
#include <cmath>
#include <limits>
#include <vector>

#include "backend/cpu/compute.h"
#include "backend/cpu/kernels.h"
#include "core/parallel.h"

namespace wick::cpu {
namespace {

template <typename T>
void softmax_rows(const Tensor& x, const Tensor& y, const ops::SoftmaxMask& mask, bool log) {
  const Tensor in = dense<T>(x);
  OutputBuffer<T> out(y);
  const int64_t cols = x.size(-1);
  const int64_t rows = cols == 0 ? 0 : x.numel() / cols;
  const int64_t rows_per_matrix = x.dim() >= 2 ? x.size(-2) : 1;
  const int64_t rows_per_batch = x.dim() >= 1 && x.size(0) > 0 ? rows / x.size(0) : rows;
  std::vector<int64_t> lengths;
  if (mask.lengths.defined()) lengths = mask.lengths.to_vector<int64_t>();
  const T* src = in.data<T>();
  T* dst = out.data();
  parallel_for(
      rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(cols, 1)), [&](int64_t begin, int64_t end) {
        for (int64_t r = begin; r < end; ++r) {
          const T* row = src + r * cols;
          T* result = dst + r * cols;
          int64_t visible = cols;  // columns [0, visible) are unmasked
          if (mask.causal)
            visible = std::min(visible, std::max<int64_t>(0, r % rows_per_matrix + mask.causal_offset + 1));
          if (!lengths.empty())
            visible = std::min(visible, std::max<int64_t>(0, lengths[r / rows_per_batch]));
          if (visible == 0) {
            for (int64_t j = 0; j < cols; ++j) result[j] = T(0);
            continue;
          }
          T max = -std::numeric_limits<T>::infinity();
          for (int64_t j = 0; j < visible; ++j) max = std::max(max, row[j]);
          T sum = 0;
          for (int64_t j = 0; j < visible; ++j) sum += std::exp(row[j] - max);
          if (log) {
            const T log_sum = std::log(sum);
            for (int64_t j = 0; j < visible; ++j) result[j] = row[j] - max - log_sum;
            for (int64_t j = visible; j < cols; ++j) result[j] = -std::numeric_limits<T>::infinity();
          } else {
            const T inv = T(1) / sum;
            for (int64_t j = 0; j < visible; ++j) result[j] = std::exp(row[j] - max) * inv;
            for (int64_t j = visible; j < cols; ++j) result[j] = T(0);
          }
        }
      });
  out.commit();
}

template <typename T>
void softmax_backward_rows(const Tensor& y, const Tensor& dy, const Tensor& dx, bool log) {
  const Tensor yd = dense<T>(y);
  const Tensor dyd = dense<T>(dy);
  OutputBuffer<T> out(dx);
  const int64_t cols = y.size(-1);
  const int64_t rows = cols == 0 ? 0 : y.numel() / cols;
  const T* ys = yd.data<T>();
  const T* gs = dyd.data<T>();
  T* dst = out.data();
  parallel_for(rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(cols, 1)),
               [&](int64_t begin, int64_t end) {
                 for (int64_t r = begin; r < end; ++r) {
                   const T* yr = ys + r * cols;
                   const T* gr = gs + r * cols;
                   T* dr = dst + r * cols;
                   T dot = 0;
                   if (log) {
                     for (int64_t j = 0; j < cols; ++j) dot += gr[j];
                     for (int64_t j = 0; j < cols; ++j) dr[j] = gr[j] - std::exp(yr[j]) * dot;
                   } else {
                     for (int64_t j = 0; j < cols; ++j) dot += yr[j] * gr[j];
                     for (int64_t j = 0; j < cols; ++j) dr[j] = yr[j] * (gr[j] - dot);
                   }
                 }
               });
  out.commit();
}

}  // namespace

void softmax(const Tensor& x, const Tensor& y, int64_t axis, const ops::SoftmaxMask& mask, bool log) {
  const int64_t last = x.dim() - 1;
  const Tensor xt = axis == last ? x : x.transpose(axis, last);
  const Tensor yt = axis == last ? y : y.transpose(axis, last);
  with_compute_type(x.dtype(), [&](auto tag) { softmax_rows<decltype(tag)>(xt, yt, mask, log); });
}

void softmax_backward(const Tensor& y, const Tensor& dy, const Tensor& dx, int64_t axis, bool log) {
  const int64_t last = y.dim() - 1;
  auto moved = [&](const Tensor& t) { return axis == last ? t : t.transpose(axis, last); };
  with_compute_type(y.dtype(), [&](auto tag) {
    softmax_backward_rows<decltype(tag)>(moved(y), moved(dy), moved(dx), log);
  });
}

}  // namespace wick::cpu
