// Writes at device-side positions and in-place increments, on the CPU.
#include <cstring>

#include "backend/cpu/kernels.h"

namespace wick::cpu {

void write_at_positions(const Tensor& cache, const Tensor& values, const Tensor& positions) {
  const int64_t batch = cache.size(0), heads = cache.size(1), capacity = cache.size(2), dim = cache.size(3);
  const Tensor v = values.contiguous();
  const int64_t* pos = positions.contiguous().data<int64_t>();
  const size_t element = dtype_size(cache.dtype());
  auto* base = static_cast<char*>(cache.data_ptr());
  const auto* src = static_cast<const char*>(v.data_ptr());
  for (int64_t b = 0; b < batch; ++b) {
    if (pos[b] < 0 || pos[b] >= capacity) continue;
    for (int64_t h = 0; h < heads; ++h)
      std::memcpy(base + (b * cache.stride(0) + h * cache.stride(1) + pos[b] * cache.stride(2)) * element,
                  src + ((b * heads + h) * dim) * element, static_cast<size_t>(dim) * element);
  }
}

void increment(const Tensor& t, int64_t step) {
  int64_t* p = t.data<int64_t>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] += step;
}

}  // namespace wick::cpu
