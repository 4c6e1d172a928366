// AdamW, Σ x² and dropout on the CPU. The sum of squares goes through fixed chunks combined in order, so the
// result does not depend on the thread count.
#include <cmath>
#include <vector>

#include "backend/cpu/compute.h"
#include "backend/cpu/kernels.h"
#include "core/parallel.h"
#include "wick/random.h"

namespace wick::cpu {

void adamw_step(const Tensor& param, const Tensor& grad, const Tensor& m, const Tensor& v,
                const ops::AdamWOptions& o) {
  with_compute_type(param.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T* p = param.data<T>();
    const T* g = grad.data<T>();
    T* pm = m.data<T>();
    T* pv = v.data<T>();
    const double t = static_cast<double>(o.step);
    const T bias1 = static_cast<T>(1.0 - std::pow(o.beta1, t));
    const T bias2_sqrt = static_cast<T>(std::sqrt(1.0 - std::pow(o.beta2, t)));
    const T lr = static_cast<T>(o.lr), b1 = static_cast<T>(o.beta1), b2 = static_cast<T>(o.beta2);
    const T eps = static_cast<T>(o.eps), decay = static_cast<T>(1.0 - o.lr * o.weight_decay);
    const T gs = static_cast<T>(o.grad_scale);
    const T step_size = lr / bias1;
    parallel_for(param.numel(), 16384, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        const T gi = g[i] * gs;
        pm[i] += (T(1) - b1) * (gi - pm[i]);  // PyTorch's lerp form, for the same rounding
        pv[i] = b2 * pv[i] + (T(1) - b2) * gi * gi;
        p[i] = p[i] * decay - step_size * pm[i] / (std::sqrt(pv[i]) / bias2_sqrt + eps);
      }
    });
  });
}

void sum_of_squares(const Tensor& x, const Tensor& out) {
  with_compute_type(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const Tensor xd = dense<T>(x);
    const T* px = xd.data<T>();
    constexpr int64_t kChunk = 1 << 16;
    const int64_t n = x.numel(), chunks = (n + kChunk - 1) / kChunk;
    std::vector<double> partial(static_cast<size_t>(chunks), 0.0);
    parallel_for(chunks, 1, [&](int64_t begin, int64_t end) {
      for (int64_t c = begin; c < end; ++c) {
        double s = 0;
        for (int64_t i = c * kChunk; i < std::min(n, (c + 1) * kChunk); ++i)
          s += static_cast<double>(px[i]) * static_cast<double>(px[i]);
        partial[static_cast<size_t>(c)] = s;
      }
    });
    double total = 0;
    for (double s : partial) total += s;
    *out.data<double>() = total;
  });
}

void dropout(const Tensor& x, double p, uint64_t seed, uint64_t draw, const Tensor& out) {
  with_compute_type(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const Tensor xd = dense<T>(x);
    OutputBuffer<T> result(out);
    const T* px = xd.data<T>();
    T* po = result.data();
    const T keep_scale = static_cast<T>(1.0 / (1.0 - p));
    const int64_t n = x.numel(), groups = (n + 3) / 4;
    parallel_for(groups, 4096, [&](int64_t begin, int64_t end) {
      for (int64_t g = begin; g < end; ++g) {
        const auto u = philox_uniform4(seed, draw, static_cast<uint64_t>(g));
        for (int64_t j = 0; j < 4 && 4 * g + j < n; ++j)
          po[4 * g + j] = u[static_cast<size_t>(j)] >= p ? px[4 * g + j] * keep_scale : T(0);
      }
    });
    result.commit();
  });
}

}  // namespace wick::cpu
