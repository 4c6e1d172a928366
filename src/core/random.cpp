#include "wick/random.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/parallel.h"
#include "wick/error.h"

namespace wick {

std::array<uint32_t, 4> philox4x32(std::array<uint32_t, 4> c, std::array<uint32_t, 2> k) {
  constexpr uint32_t kMul0 = 0xD2511F53u, kMul1 = 0xCD9E8D57u;
  constexpr uint32_t kWeyl0 = 0x9E3779B9u, kWeyl1 = 0xBB67AE85u;
  for (int round = 0; round < 10; ++round) {
    const uint64_t p0 = static_cast<uint64_t>(kMul0) * c[0];
    const uint64_t p1 = static_cast<uint64_t>(kMul1) * c[2];
    c = {static_cast<uint32_t>(p1 >> 32) ^ c[1] ^ k[0], static_cast<uint32_t>(p1),
         static_cast<uint32_t>(p0 >> 32) ^ c[3] ^ k[1], static_cast<uint32_t>(p0)};
    k[0] += kWeyl0;
    k[1] += kWeyl1;
  }
  return c;
}

std::array<double, 4> philox_uniform4(uint64_t seed, uint64_t draw, uint64_t group) {
  const auto words = philox4x32({static_cast<uint32_t>(group), static_cast<uint32_t>(group >> 32),
                                 static_cast<uint32_t>(draw), static_cast<uint32_t>(draw >> 32)},
                                {static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)});
  std::array<double, 4> u;
  for (int i = 0; i < 4; ++i) u[i] = (static_cast<double>(words[i]) + 0.5) * 0x1p-32;
  return u;
}

namespace {

template <typename Transform>
Tensor generate(const Shape& shape, Generator& generator, DType dtype, Device device, Transform transform) {
  if (!is_floating(dtype)) fail("random", "dtype must be floating-point, got {}", dtype_name(dtype));
  const int64_t n = shape_numel(shape);
  std::vector<double> values(static_cast<size_t>(n));
  const uint64_t seed = generator.seed();
  const uint64_t draw = generator.next_draw();
  const int64_t groups = (n + 3) / 4;
  parallel_for(groups, 4096, [&](int64_t begin, int64_t end) {
    for (int64_t g = begin; g < end; ++g) {
      const auto four = transform(philox_uniform4(seed, draw, static_cast<uint64_t>(g)));
      for (int64_t i = 0; i < 4 && 4 * g + i < n; ++i) values[static_cast<size_t>(4 * g + i)] = four[i];
    }
  });
  return Tensor::from_vector(values, shape).to(dtype).to(device);
}

// The largest finite value of `dtype` below `high` (finite): rounding is monotonic, so any number up to it
// stays below `high` once stored. Steps down from `high` as stored, doubling the step until the rounding
// leaves it.
double largest_below(double high, DType dtype) {
  const auto stored = [dtype](double x) {
    return Tensor::from_vector(std::vector<double>{x}, Shape{}).to(dtype).to_vector<double>()[0];
  };
  const double largest_finite = dtype == DType::f16    ? 65504.0
                                : dtype == DType::bf16 ? 0x1.fep127
                                : dtype == DType::f32 ? static_cast<double>(std::numeric_limits<float>::max())
                                                      : std::numeric_limits<double>::max();
  const double top = std::min(stored(high), largest_finite);
  if (top < high) return top;
  for (double step = std::max(std::abs(top) * 0x1p-53, std::numeric_limits<double>::denorm_min());
       std::isfinite(step); step *= 2) {
    const double below = stored(top - step);
    if (below < top) return below;
  }
  fail("rand_uniform", "found no {} value below {}", dtype_name(dtype), high);
}

}  // namespace

Tensor rand_uniform(const Shape& shape, Generator& generator, double low, double high, DType dtype,
                    Device device) {
  if (!(low < high)) fail("rand_uniform", "needs low < high, got [{}, {})", low, high);
  if (!std::isfinite(low) || !std::isfinite(high))
    fail("rand_uniform", "needs finite bounds, got [{}, {})", low, high);
  if (!is_floating(dtype)) fail("random", "dtype must be floating-point, got {}", dtype_name(dtype));
  const double top = largest_below(high, dtype);
  if (top < low) fail("rand_uniform", "no {} value lies in [{}, {})", dtype_name(dtype), low, high);
  return generate(shape, generator, dtype, device, [&](std::array<double, 4> u) {
    for (double& x : u) x = std::min(low + (high - low) * x, top);
    return u;
  });
}

Tensor rand_normal(const Shape& shape, Generator& generator, double mean, double std, DType dtype,
                   Device device) {
  if (!(std >= 0)) fail("rand_normal", "standard deviation must be >= 0, got {}", std);
  return generate(shape, generator, dtype, device, [&](std::array<double, 4> u) {
    std::array<double, 4> z;
    for (int pair = 0; pair < 2; ++pair) {
      const double radius = std::sqrt(-2.0 * std::log(u[2 * pair]));
      const double angle = 2.0 * M_PI * u[2 * pair + 1];
      z[2 * pair] = mean + std * radius * std::cos(angle);
      z[2 * pair + 1] = mean + std * radius * std::sin(angle);
    }
    return z;
  });
}

}  // namespace wick
