// AdamW against a float64 loop written from PyTorch's update rule, Σ x² against a float64 sum, dropout's mask
// statistics, reproducibility and linearity, and the argument checks.
#include <gtest/gtest.h>

#include <cmath>

#include "support/test_util.h"

namespace wick::test {
namespace {

TEST(AdamW, StepsMatchTheReferenceRule) {
  Generator gen = fresh_generator();
  for (DType dtype : {DType::f64, DType::f32}) {
    const Shape shape{37, 5};
    Tensor p = randn(gen, shape, dtype), m = Tensor::zeros(shape, dtype), v = Tensor::zeros(shape, dtype);
    std::vector<double> rp = values(p), rm(rp.size(), 0.0), rv(rp.size(), 0.0);
    ops::AdamWOptions o;
    o.lr = 0.01;
    o.weight_decay = 0.1;
    o.beta1 = 0.8;
    o.beta2 = 0.95;
    o.eps = 1e-6;
    for (int64_t step = 1; step <= 5; ++step) {
      const Tensor g = randn(gen, shape, dtype);
      o.step = step;
      o.grad_scale = step == 3 ? 0.5 : 1.0;
      ops::adamw_step(p, g, m, v, o);
      const auto gv = values(g);
      for (size_t i = 0; i < rp.size(); ++i) {
        const double gi = gv[i] * o.grad_scale;
        rp[i] *= 1 - o.lr * o.weight_decay;
        rm[i] = o.beta1 * rm[i] + (1 - o.beta1) * gi;
        rv[i] = o.beta2 * rv[i] + (1 - o.beta2) * gi * gi;
        const double bias1 = 1 - std::pow(o.beta1, step), bias2 = 1 - std::pow(o.beta2, step);
        rp[i] -= o.lr / bias1 * rm[i] / (std::sqrt(rv[i]) / std::sqrt(bias2) + o.eps);
      }
    }
    EXPECT_LE(rel_error(p, rp), 10 * tolerance(dtype)) << dtype_name(dtype);
    EXPECT_LE(rel_error(m, rm), 10 * tolerance(dtype)) << dtype_name(dtype);
    EXPECT_LE(rel_error(v, rv), 10 * tolerance(dtype)) << dtype_name(dtype);
  }
}

TEST(AdamW, RejectsBadArguments) {
  const Tensor p = Tensor::zeros({4}), bf = Tensor::zeros({4}, DType::bf16);
  ops::AdamWOptions o;
  expect_error([&] { ops::adamw_step(bf, bf, bf, bf, o); }, {"adamw_step", "f32 or f64"});
  expect_error([&] { ops::adamw_step(p, Tensor::zeros({5}), p, p, o); }, {"adamw_step", "grad", "shape"});
  o.step = 0;
  expect_error([&] { ops::adamw_step(p, p, p, p, o); }, {"adamw_step", "step must be >= 1"});
  o.step = 1;
  o.beta2 = 1.0;
  expect_error([&] { ops::adamw_step(p, p, p, p, o); }, {"beta2"});
}

TEST(SumOfSquares, MatchesFloat64Sum) {
  Generator gen = fresh_generator();
  for (DType dtype : {DType::f64, DType::f32, DType::bf16}) {
    const Tensor x = randn(gen, {1000, 77}, dtype);
    double expected = 0;
    for (double v : values(x)) expected += v * v;
    const Tensor s = ops::sum_of_squares(non_contiguous(x));
    ASSERT_EQ(s.dtype(), DType::f64);
    EXPECT_NEAR(s.item(), expected, 1e-9 * expected) << dtype_name(dtype);
  }
  EXPECT_EQ(ops::sum_of_squares(Tensor::zeros({0})).item(), 0.0);
  const Tensor bad = Tensor::from_vector(std::vector<float>{1.0f, NAN}, {2});
  EXPECT_TRUE(std::isnan(ops::sum_of_squares(bad).item()));
}

TEST(Dropout, KeepsTheRightFractionScaledAndReproducibly) {
  Generator gen = fresh_generator();
  const Tensor x = randn(gen, {200, 301}, DType::f32);
  const double p = 0.3;
  const Tensor y = ops::dropout(x, p, 1234, 7);
  const auto xv = values(x), yv = values(y);
  int64_t kept = 0;
  for (size_t i = 0; i < xv.size(); ++i) {
    if (yv[i] != 0) {
      ++kept;
      EXPECT_NEAR(yv[i], xv[i] / (1 - p), 1e-6 * std::abs(xv[i]) + 1e-7);
    }
  }
  const double fraction = static_cast<double>(kept) / static_cast<double>(xv.size());
  EXPECT_NEAR(fraction, 1 - p, 0.01);  // 60k draws: standard deviation ≈ 0.002
  EXPECT_EQ(values(ops::dropout(x, p, 1234, 7)), yv);
  EXPECT_NE(values(ops::dropout(x, p, 1234, 8)), yv);
  // Linear: dropout(2x) = 2·dropout(x) with the same stream; p = 0 is the identity.
  const auto twice = values(ops::dropout(ops::scale(x, 2.0), p, 1234, 7));
  for (size_t i = 0; i < yv.size(); ++i)
    EXPECT_FLOAT_EQ(static_cast<float>(twice[i]), static_cast<float>(2 * yv[i]));
  EXPECT_EQ(values(ops::dropout(x, 0.0, 1, 1)), xv);
  expect_error([&] { ops::dropout(x, 1.0, 1, 1); }, {"dropout", "p must be in [0, 1)"});
}

}  // namespace
}  // namespace wick::test
