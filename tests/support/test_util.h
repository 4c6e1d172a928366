// Helpers shared by the tests: fresh random inputs, poisoned outputs, non-contiguous copies, error matching.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "wick/wick.h"

namespace wick::test {

// A generator seeded differently for every call in a process, so each test run draws fresh data; the seed is
// printed on failure through SCOPED_TRACE by the caller if needed.
inline Generator fresh_generator() {
  static std::random_device device;
  return Generator((static_cast<uint64_t>(device()) << 32) | device());
}

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
