#include "backend/cpu/pool.h"

#include <algorithm>
#include <vector>

#include "backend/cpu/compute.h"
#include "core/parallel.h"

namespace wick::cpu {

void mean_pool(const Tensor& x, const Tensor& lengths, const Tensor& out) {
  const int64_t batch = x.size(0), seq = x.size(1), width = x.size(2);
  const std::vector<int64_t> length = lengths.to_vector<int64_t>();
  with_compute_type(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const Tensor xd = dense<T>(x);
    OutputBuffer<T> result(out);
    const T* src = xd.data<T>();
    T* dst = result.data();
    parallel_for(batch, 1, [&](int64_t begin, int64_t end) {
      std::vector<double> sum(static_cast<size_t>(width));
      for (int64_t b = begin; b < end; ++b) {
        const int64_t n = std::clamp<int64_t>(length[static_cast<size_t>(b)], 0, seq);
        std::fill(sum.begin(), sum.end(), 0.0);
        for (int64_t s = 0; s < n; ++s)
          for (int64_t c = 0; c < width; ++c) sum[static_cast<size_t>(c)] += src[(b * seq + s) * width + c];
        for (int64_t c = 0; c < width; ++c)
          dst[b * width + c] =
              n > 0 ? static_cast<T>(sum[static_cast<size_t>(c)] / static_cast<double>(n)) : T(0);
      }
    });
    result.commit();
  });
}

}  // namespace wick::cpu
