// argmax and top-k over the last axis. NaN ranks above every number, as in the reference; ties keep the lower
// index first.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "backend/cpu/compute.h"
#include "backend/cpu/kernels.h"
#include "core/parallel.h"

namespace wick::cpu {
namespace {

// Strict "ranks before" order: larger value first, NaN first of all, then lower index.
template <typename T>
bool ranks_before(T a, int64_t ia, T b, int64_t ib) {
  const bool na = std::isnan(a), nb = std::isnan(b);
  if (na || nb) return na && (!nb || ia < ib);
  if (a != b) return a > b;
  return ia < ib;
}

}  // namespace

void argmax(const Tensor& x, const Tensor& indices) {
  with_compute_type(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const Tensor xd = dense<T>(x);
    const T* src = xd.data<T>();
    const int64_t cols = x.size(-1), rows = x.numel() / cols;
    int64_t* out = indices.data<int64_t>();
    parallel_for(rows, std::max<int64_t>(1, 16384 / cols), [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        const T* row = src + r * cols;
        int64_t best = 0;
        for (int64_t j = 1; j < cols; ++j)
          if (ranks_before(row[j], j, row[best], best)) best = j;
        out[r] = best;
      }
    });
  });
}

void topk(const Tensor& x, int64_t k, const Tensor& values, const Tensor& indices) {
  with_compute_type(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const Tensor xd = dense<T>(x);
    OutputBuffer<T> out_values(values);
    const T* src = xd.data<T>();
    const int64_t cols = x.size(-1), rows = x.numel() / cols;
    T* vals = out_values.data();
    int64_t* idx = indices.data<int64_t>();
    parallel_for(rows, std::max<int64_t>(1, 16384 / cols), [&](int64_t begin, int64_t end) {
      std::vector<int64_t> order(static_cast<size_t>(cols));
      for (int64_t r = begin; r < end; ++r) {
        const T* row = src + r * cols;
        std::iota(order.begin(), order.end(), 0);
        std::partial_sort(order.begin(), order.begin() + k, order.end(),
                          [&](int64_t a, int64_t b) { return ranks_before(row[a], a, row[b], b); });
        for (int64_t j = 0; j < k; ++j) {
          vals[r * k + j] = row[order[j]];
          idx[r * k + j] = order[j];
        }
      }
    });
    out_values.commit();
  });
}

}  // namespace wick::cpu
