// Cross-entropy: per row, loss = logsumexp(logits) − logits[target]; the mean is over rows not ignored.
#include <cmath>
#include <limits>
#include <vector>

#include "backend/cpu/compute.h"
#include "backend/cpu/kernels.h"
#include "core/parallel.h"

namespace wick::cpu {
namespace {

template <typename T>
T log_sum_exp(const T* row, int64_t n) {
  T max = -std::numeric_limits<T>::infinity();
  for (int64_t j = 0; j < n; ++j) max = std::max(max, row[j]);
  T sum = 0;
  for (int64_t j = 0; j < n; ++j) sum += std::exp(row[j] - max);
  return max + std::log(sum);
}

// Target ids as int64, each checked against the class count unless ignored; returns how many count.
std::vector<int64_t> checked_targets(std::string_view op, const Tensor& targets, int64_t classes,
                                     int64_t ignore_index, int64_t& counted) {
  std::vector<int64_t> ids = targets.to_vector<int64_t>();
  counted = 0;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] == ignore_index) continue;
    if (ids[i] < 0 || ids[i] >= classes)
      fail(op, "target {} at row {} is out of range (expected 0..{} or the ignore index {})", ids[i], i,
           classes - 1, ignore_index);
    ++counted;
  }
  return ids;
}

}  // namespace

void cross_entropy(const Tensor& logits, const Tensor& targets, int64_t ignore_index, const Tensor& loss) {
  with_compute_type(logits.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const int64_t rows = logits.size(0), classes = logits.size(1);
    int64_t counted = 0;
    const auto ids = checked_targets("cross_entropy", targets, classes, ignore_index, counted);
    const Tensor ld = dense<T>(logits);
    const T* x = ld.data<T>();
    std::vector<double> per_row(static_cast<size_t>(rows), 0.0);
    parallel_for(rows, std::max<int64_t>(1, 16384 / classes), [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r)
        if (ids[r] != ignore_index)
          per_row[r] = log_sum_exp(x + r * classes, classes) - x[r * classes + ids[r]];
    });
    double total = 0;
    for (double v : per_row) total += v;
    const double mean = counted == 0 ? std::numeric_limits<double>::quiet_NaN() : total / counted;
    loss.fill_(mean);
  });
}

void cross_entropy_backward(const Tensor& logits, const Tensor& targets, int64_t ignore_index, double grad,
                            const Tensor& dlogits) {
  with_compute_type(logits.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const int64_t rows = logits.size(0), classes = logits.size(1);
    int64_t counted = 0;
    const auto ids = checked_targets("cross_entropy_backward", targets, classes, ignore_index, counted);
    const Tensor ld = dense<T>(logits);
    OutputBuffer<T> out(dlogits);
    const T* x = ld.data<T>();
    T* d = out.data();
    const T factor = counted == 0 ? T(0) : static_cast<T>(grad / counted);
    parallel_for(rows, std::max<int64_t>(1, 16384 / classes), [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        T* dr = d + r * classes;
        if (ids[r] == ignore_index) {
          for (int64_t j = 0; j < classes; ++j) dr[j] = T(0);
          continue;
        }
        const T* xr = x + r * classes;
        const T lse = log_sum_exp(xr, classes);
        for (int64_t j = 0; j < classes; ++j) dr[j] = std::exp(xr[j] - lse) * factor;
        dr[ids[r]] -= factor;
      }
    });
    out.commit();
  });
}

}  // namespace wick::cpu
