// Sampling primitives on the CPU, one row at a time: top-k keeps values >= the k-th largest; top-p sorts the
// probabilities and keeps those >= the one at which the running total reaches top_p; the multinomial draw
// scans the unnormalized probabilities in index order against u · total, u from the row's Philox number.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "backend/cpu/compute.h"
#include "backend/cpu/kernels.h"
#include "core/parallel.h"
#include "wick/random.h"

namespace wick::cpu {
namespace {

// Runs body(row_in, row_out, cols) over the rows of dense f32/f64 copies and writes the result to `out`.
template <typename Body>
void filter_rows(const Tensor& logits, const Tensor& out, Body&& body) {
  with_compute_type(logits.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const Tensor in = dense<T>(logits);
    OutputBuffer<T> result(out);
    const int64_t cols = logits.size(-1), rows = logits.numel() / cols;
    const T* src = in.data<T>();
    T* dst = result.data();
    parallel_for(rows, 1, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) body(src + r * cols, dst + r * cols, cols);
    });
    result.commit();
  });
}

}  // namespace

void top_k_filter(const Tensor& logits, int64_t k, const Tensor& out) {
  filter_rows(logits, out, [k](const auto* in, auto* o, int64_t cols) {
    using T = std::remove_const_t<std::remove_pointer_t<decltype(in)>>;
    std::vector<T> values(in, in + cols);
    std::nth_element(values.begin(), values.begin() + (k - 1), values.end(), std::greater<T>());
    const T kth = values[k - 1];
    for (int64_t j = 0; j < cols; ++j) o[j] = in[j] >= kth ? in[j] : -std::numeric_limits<T>::infinity();
  });
}

void top_p_filter(const Tensor& logits, double top_p, const Tensor& out) {
  filter_rows(logits, out, [top_p](const auto* in, auto* o, int64_t cols) {
    using T = std::remove_const_t<std::remove_pointer_t<decltype(in)>>;
    const T max = *std::max_element(in, in + cols);
    std::vector<double> p(cols);
    double total = 0;
    for (int64_t j = 0; j < cols; ++j) total += p[j] = std::exp(static_cast<double>(in[j] - max));
    std::vector<int64_t> order(cols);
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return p[a] > p[b]; });
    double running = 0;
    double threshold = p[order[0]];
    for (int64_t i : order) {
      running += p[i] / total;
      threshold = p[i];
      if (running >= top_p) break;
    }
    for (int64_t j = 0; j < cols; ++j) o[j] = p[j] >= threshold ? in[j] : -std::numeric_limits<T>::infinity();
  });
}

void min_p_filter(const Tensor& logits, double min_p, const Tensor& out) {
  filter_rows(logits, out, [min_p](const auto* in, auto* o, int64_t cols) {
    using T = std::remove_const_t<std::remove_pointer_t<decltype(in)>>;
    const T threshold = *std::max_element(in, in + cols) + static_cast<T>(std::log(min_p));
    for (int64_t j = 0; j < cols; ++j)
      o[j] = in[j] >= threshold ? in[j] : -std::numeric_limits<T>::infinity();
  });
}

void apply_penalties(const Tensor& logits, const Tensor& counts, double repetition, double frequency,
                     double presence, const Tensor& out) {
  with_compute_type(logits.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const Tensor in = dense<T>(logits), seen = dense<T>(counts);
    OutputBuffer<T> result(out);
    const T* x = in.data<T>();
    const T* c = seen.data<T>();
    T* o = result.data();
    for (int64_t i = 0; i < logits.numel(); ++i) {
      T v = x[i];
      if (c[i] > 0) {
        v = v > 0 ? v / static_cast<T>(repetition) : v * static_cast<T>(repetition);
        v -= static_cast<T>(frequency) * c[i] + static_cast<T>(presence);
      }
      o[i] = v;
    }
    result.commit();
  });
}

void sample_multinomial(const Tensor& logits, uint64_t seed, uint64_t draw, const Tensor& out) {
  with_compute_type(logits.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const Tensor in = dense<T>(logits);
    const int64_t cols = logits.size(-1), rows = logits.numel() / cols;
    const T* src = in.data<T>();
    int64_t* ids = out.data<int64_t>();
    for (int64_t r = 0; r < rows; ++r) {
      const T* row = src + r * cols;
      const T max = *std::max_element(row, row + cols);
      if (!(max > -std::numeric_limits<T>::infinity()))
        fail("sample_multinomial", "row {} has no finite logit to draw from", r);
      double total = 0;
      for (int64_t j = 0; j < cols; ++j) total += std::exp(static_cast<double>(row[j] - max));
      const double target = philox_uniform4(seed, draw, static_cast<uint64_t>(r))[0] * total;
      double running = 0;
      int64_t chosen = -1;
      for (int64_t j = 0; j < cols; ++j) {
        const double p = std::exp(static_cast<double>(row[j] - max));
        if (p == 0) continue;
        chosen = j;  // the last token with mass, should rounding leave target just above the total
        running += p;
        if (running > target) break;
      }
      ids[r] = chosen;
    }
  });
}

}  // namespace wick::cpu
