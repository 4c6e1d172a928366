// Cross-entropy: per row, loss = logsumexp(logits) − logits[target]; the mean is over rows not ignored.
#include <cmath>
#include <limits>
#include <vector>

#include "backend/cpu/compute.h"
#include "backend/cpu/kernels.h"
#include "core/parallel.h"

namespace wick::cpu {
namespace {

// A row's max and log Σ exp(row − max), kept apart: x − max − log_sum stays accurate for large logits, where
// x − (max + log_sum) would lose log_sum's low bits to the rounding of max + log_sum.
template <typename T>
struct LogSumExp {
  T max, log_sum;
};

template <typename T>
LogSumExp<T> log_sum_exp(const T* row, int64_t n) {
  T max = -std::numeric_limits<T>::infinity();
  for (int64_t j = 0; j < n; ++j) max = std::max(max, row[j]);
  T sum = 0;
  for (int64_t j = 0; j < n; ++j) sum += std::exp(row[j] - max);
  return {max, std::log(sum)};
}

// Target ids as int64 (validated by the front-end) and how many are not ignored.
std::vector<int64_t> target_ids(const Tensor& targets, int64_t ignore_index, int64_t& counted) {
  std::vector<int64_t> ids = targets.to_vector<int64_t>();
  counted = 0;
  for (int64_t id : ids) counted += id != ignore_index;
  return ids;
}

}  // namespace

void cross_entropy(const Tensor& logits, const Tensor& targets, int64_t ignore_index, const Tensor& loss) {
  with_compute_type(logits.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const int64_t rows = logits.size(0), classes = logits.size(1);
    int64_t counted = 0;
    const auto ids = target_ids(targets, ignore_index, counted);
    const Tensor ld = dense<T>(logits);
    const T* x = ld.data<T>();
    std::vector<double> per_row(static_cast<size_t>(rows), 0.0);
    parallel_for(rows, std::max<int64_t>(1, 16384 / classes), [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r)
        if (ids[r] != ignore_index) {
          const auto lse = log_sum_exp(x + r * classes, classes);
          per_row[r] = lse.log_sum - (x[r * classes + ids[r]] - lse.max);
        }
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
    const auto ids = target_ids(targets, ignore_index, counted);
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
        const auto lse = log_sum_exp(xr, classes);
        for (int64_t j = 0; j < classes; ++j) dr[j] = std::exp(xr[j] - lse.max - lse.log_sum) * factor;
        dr[ids[r]] -= factor;
      }
    });
    out.commit();
  });
}

}  // namespace wick::cpu
