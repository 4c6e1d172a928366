// Seeded random numbers from the Philox4x32-10 counter-based generator: the same seed gives the same numbers
// on every run and machine, and element i depends only on (seed, draw, i), so any device can produce the same
// stream.
#pragma once

#include <array>
#include <cstdint>

#include "wick/tensor.h"

namespace wick {

// Philox4x32-10: four 32-bit words from a 128-bit counter and a 64-bit key.
std::array<uint32_t, 4> philox4x32(std::array<uint32_t, 4> counter, std::array<uint32_t, 2> key);

// Four uniform numbers in (0, 1) from the Philox stream (seed, draw) at counter `group`: the numbers behind
// elements 4·group .. 4·group + 3 of a draw. Device code computes the same function.
std::array<double, 4> philox_uniform4(uint64_t seed, uint64_t draw, uint64_t group);

class Generator {
 public:
  explicit Generator(uint64_t seed = 0) : seed_(seed) {}
  uint64_t seed() const { return seed_; }
  // Each draw (one tensor's worth of numbers) uses its own counter range; the draw count is the state.
  uint64_t draws() const { return draws_; }
  void set_draws(uint64_t draws) { draws_ = draws; }
  uint64_t next_draw() { return draws_++; }

 private:
  uint64_t seed_;
  uint64_t draws_ = 0;
};

// Uniform in [low, high): no value reaches `high` once rounded to `dtype`.
Tensor rand_uniform(const Shape& shape, Generator& generator, double low = 0.0, double high = 1.0,
                    DType dtype = DType::f32, Device device = Device::cpu());
// Normal with the given mean and standard deviation (Box–Muller).
Tensor rand_normal(const Shape& shape, Generator& generator, double mean = 0.0, double std = 1.0,
                   DType dtype = DType::f32, Device device = Device::cpu());

}  // namespace wick
