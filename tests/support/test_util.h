// Helpers shared by the tests: fresh random inputs, poisoned outputs, non-contiguous copies, error matching.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "wick/wick.h"

namespace wick::test {

// A generator seeded differently for every call, so each test run draws fresh data. Each seed is printed (a
// failing test's output shows it). WICK_TEST_SEED=<seed> gives the first generator of a process that seed
// (and the next ones seed + 1, + 2, ...): run the failing test alone (--gtest_filter) with the seed it
// printed to replay it; a test that makes several generators replays exactly when its failing one was the
// first.
inline Generator fresh_generator() {
  static std::random_device device;
  static uint64_t calls = 0;
  uint64_t seed = (static_cast<uint64_t>(device()) << 32) | device();
  if (const char* fixed = std::getenv("WICK_TEST_SEED")) seed = std::strtoull(fixed, nullptr, 0) + calls;
  ++calls;
  std::printf("[   SEED   ] WICK_TEST_SEED=0x%llx\n", static_cast<unsigned long long>(seed));
  return Generator(seed);
}

// Sets WICK_IMPL_<OP> (`variable`) to `name` for the scope, so the named implementation runs (or the call
// fails).
class ForcedImplementation {
 public:
  ForcedImplementation(std::string variable, const char* name) : variable_(std::move(variable)) {
    setenv(variable_.c_str(), name, 1);
  }
  ~ForcedImplementation() { unsetenv(variable_.c_str()); }
  ForcedImplementation(const ForcedImplementation&) = delete;
  ForcedImplementation& operator=(const ForcedImplementation&) = delete;

 private:
  std::string variable_;
};

// Random normal values (never all zeros) of `dtype` on the cpu.
inline Tensor randn(Generator& gen, const Shape& shape, DType dtype = DType::f32, double std = 1.0) {
  return rand_normal(shape, gen, 0.0, std, dtype);
}

// The same values laid out non-contiguously: stored transposed in its last two axes (or with a stride-2 gap
// for rank 1), then viewed back, so the logical values are unchanged but the strides are not row-major.
inline Tensor non_contiguous(const Tensor& t) {
  if (t.dim() >= 2) {
    Tensor stored = t.transpose(-1, -2).contiguous();
    Tensor view = stored.transpose(-1, -2);
    EXPECT_FALSE(view.is_contiguous() && t.size(-1) > 1 && t.size(-2) > 1);
    return view;
  }
  Shape wide = t.shape();
  wide.push_back(2);
  Tensor stored = Tensor::zeros(wide, t.dtype());
  stored.select(-1, 0).copy_(t);
  return stored.select(-1, 0);
}

// Fills a tensor with NaN so any element a kernel fails to write shows up.
inline void poison(const Tensor& t) {
  t.fill_(std::nan(""));
}

inline std::vector<double> values(const Tensor& t) {
  return t.to_vector<double>();
}

// Relative L2 error of `actual` against the double `expected` values.
inline double rel_error(const Tensor& actual, const std::vector<double>& expected) {
  const std::vector<double> got = values(actual);
  EXPECT_EQ(got.size(), expected.size());
  double diff = 0, norm = 0;
  for (size_t i = 0; i < got.size() && i < expected.size(); ++i) {
    diff += (got[i] - expected[i]) * (got[i] - expected[i]);
    norm += expected[i] * expected[i];
  }
  return norm > 0 ? std::sqrt(diff / norm) : std::sqrt(diff);
}

// Tolerance on the relative L2 error for a result computed from inputs of `dtype`.
inline double tolerance(DType dtype) {
  switch (dtype) {
    case DType::f64:
      return 1e-12;
    case DType::f32:
      return 1e-5;
    case DType::bf16:
      return 1e-2;
    default:
      return 3e-3;  // f16
  }
}

// Expects `body` to throw wick::Error whose message contains every fragment.
inline void expect_error(const std::function<void()>& body, const std::vector<std::string>& fragments) {
  try {
    body();
    ADD_FAILURE() << "expected a wick::Error";
  } catch (const Error& e) {
    const std::string message = e.what();
    for (const auto& fragment : fragments)
      EXPECT_NE(message.find(fragment), std::string::npos)
          << "message: " << message << "\nmissing: " << fragment;
  }
}

}  // namespace wick::test
