#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "support/test_util.h"
#include "wick/random.h"

using namespace wick;

namespace {

struct Moments {
  double mean = 0;
  double std = 0;
  double min = 0;
  double max = 0;
};

Moments moments(const Tensor& t) {
  const std::vector<double> v = test::values(t);
  Moments m{0, 0, v[0], v[0]};
  for (double x : v) {
    m.mean += x;
    m.min = std::min(m.min, x);
    m.max = std::max(m.max, x);
  }
  m.mean /= static_cast<double>(v.size());
  for (double x : v) m.std += (x - m.mean) * (x - m.mean);
  m.std = std::sqrt(m.std / static_cast<double>(v.size() - 1));
  return m;
}

}  // namespace

// Known-answer vectors from the Random123 distribution (kat_vectors, philox4x32_10).
TEST(Philox, KnownAnswers) {
  EXPECT_EQ(philox4x32({0, 0, 0, 0}, {0, 0}),
            (std::array<uint32_t, 4>{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}));
  EXPECT_EQ(philox4x32({0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}, {0xffffffff, 0xffffffff}),
            (std::array<uint32_t, 4>{0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}));
  EXPECT_EQ(philox4x32({0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}, {0xa4093822, 0x299f31d0}),
            (std::array<uint32_t, 4>{0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}));
}

TEST(Random, SameSeedGivesSameNumbers) {
  const uint64_t seed = test::fresh_generator().seed();
  Generator a(seed), b(seed);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(rand_normal({5, 7}, a).to_vector<float>(), rand_normal({5, 7}, b).to_vector<float>());
    EXPECT_EQ(rand_uniform({13}, a, -2, 3, DType::f64).to_vector<double>(),
              rand_uniform({13}, b, -2, 3, DType::f64).to_vector<double>());
  }
  EXPECT_EQ(a.draws(), 6u);
  // Rewinding the draw counter replays the stream.
  a.set_draws(2);
  Generator c(seed);
  c.set_draws(2);
  EXPECT_EQ(rand_normal({9}, a).to_vector<float>(), rand_normal({9}, c).to_vector<float>());
}

TEST(Random, DrawsAndSeedsDiffer) {
  Generator gen = test::fresh_generator();
  const std::vector<float> first = rand_uniform({64}, gen).to_vector<float>();
  const std::vector<float> second = rand_uniform({64}, gen).to_vector<float>();
  EXPECT_NE(first, second);
  Generator other(gen.seed() + 1);
  EXPECT_NE(rand_uniform({64}, other).to_vector<float>(), first);
  // Within one draw, the numbers are not repeated in blocks of four.
  EXPECT_NE(std::vector<float>(first.begin(), first.begin() + 4),
            std::vector<float>(first.begin() + 4, first.begin() + 8));
}

TEST(Random, ElementDependsOnlyOnSeedDrawAndIndex) {
  const uint64_t seed = test::fresh_generator().seed();
  Generator small(seed), large(seed);
  const std::vector<double> prefix = rand_uniform({7}, small, 0, 1, DType::f64).to_vector<double>();
  const std::vector<double> full = rand_uniform({1003}, large, 0, 1, DType::f64).to_vector<double>();
  EXPECT_EQ(prefix, std::vector<double>(full.begin(), full.begin() + 7));
  // Element 4·g + i of draw d is word i of philox(counter {g, 0, d, 0}, key = seed), mapped into (0, 1).
  const auto key = std::array<uint32_t, 2>{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)};
  const auto words = philox4x32({250, 0, 0, 0}, key);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(full[1000 + i], (words[i] + 0.5) * 0x1p-32) << i;
}

TEST(Random, NormalMomentsWithinBounds) {
  Generator gen = test::fresh_generator();
  const int64_t n = 100000;
  // The sample mean has standard error 1/sqrt(n) ≈ 0.0032 and the sample std about 1/sqrt(2n) ≈ 0.0022;
  // the bounds are more than six standard errors.
  const Moments standard = moments(rand_normal({n}, gen));
  EXPECT_NEAR(standard.mean, 0.0, 0.02);
  EXPECT_NEAR(standard.std, 1.0, 0.015);
  const Moments shifted = moments(rand_normal({n}, gen, 3.0, 0.5, DType::f64));
  EXPECT_NEAR(shifted.mean, 3.0, 0.01);
  EXPECT_NEAR(shifted.std, 0.5, 0.0075);
  // Box–Muller tails: about 27 of 100k values beyond 3.5 sigma are expected; none beyond about 6.7.
  EXPECT_GT(standard.max, 3.0);
  EXPECT_LT(standard.min, -3.0);
  EXPECT_LT(std::max(standard.max, -standard.min), 7.0);
}

TEST(Random, UniformRangeAndMoments) {
  Generator gen = test::fresh_generator();
  const int64_t n = 100000;
  const Moments m = moments(rand_uniform({n}, gen, -3.0, 5.0, DType::f64));
  EXPECT_GT(m.min, -3.0);
  EXPECT_LT(m.max, 5.0);
  EXPECT_LT(m.min, -2.99);
  EXPECT_GT(m.max, 4.99);
  // Std of U(-3, 5) is 8/sqrt(12) ≈ 2.309; standard error of the mean ≈ 0.0073.
  EXPECT_NEAR(m.mean, 1.0, 0.05);
  EXPECT_NEAR(m.std, 8.0 / std::sqrt(12.0), 0.03);
  const Moments unit = moments(rand_uniform({n}, gen));
  EXPECT_GE(unit.min, 0.0);
  EXPECT_LT(unit.max, 1.0);
  EXPECT_NEAR(unit.mean, 0.5, 0.006);
  // Near 1 the 16-bit types are coarse (about 24 and 200 of 100k draws lie within their half-step of 1):
  // rounding must not carry any of them up to 1.
  for (DType dtype : {DType::f16, DType::bf16}) {
    const Moments half = moments(rand_uniform({n}, gen, 0.0, 1.0, dtype));
    EXPECT_GE(half.min, 0.0) << dtype_name(dtype);
    EXPECT_LT(half.max, 1.0) << dtype_name(dtype);
  }
  const Moments narrow = moments(rand_uniform({n}, gen, 1000.0, 1001.0, DType::bf16));
  EXPECT_LT(narrow.max, 1001.0);
  // A bound past the dtype's range: values stay finite, up to the largest finite value.
  const Moments wide = moments(rand_uniform({n}, gen, 60000.0, 70000.0, DType::f16));
  EXPECT_LE(wide.max, 65504.0);
  EXPECT_GE(wide.min, 60000.0);
}

TEST(Random, DtypesAndShapes) {
  Generator gen = test::fresh_generator();
  for (DType dtype : {DType::f32, DType::f64, DType::f16, DType::bf16}) {
    Tensor t = rand_normal({3, 4, 5}, gen, 0, 1, dtype);
    EXPECT_EQ(t.dtype(), dtype);
    EXPECT_EQ(t.shape(), (Shape{3, 4, 5}));
  }
  EXPECT_EQ(rand_uniform({}, gen).numel(), 1);
  EXPECT_EQ(rand_uniform({0, 4}, gen).numel(), 0);
  EXPECT_EQ(test::values(rand_normal({6}, gen, 2.5, 0.0)), std::vector<double>(6, 2.5));
}

TEST(Random, BadArgumentsAreErrors) {
  Generator gen(1);
  test::expect_error([&] { rand_uniform({2}, gen, 1.0, 1.0); }, {"[rand_uniform]", "low < high"});
  test::expect_error([&] { rand_normal({2}, gen, 0.0, -1.0); }, {"[rand_normal]", ">= 0", "-1"});
  test::expect_error([&] { rand_normal({2}, gen, 0.0, 1.0, DType::i32); },
                     {"[random]", "floating-point", "i32"});
  test::expect_error([&] { rand_uniform({2}, gen, 0.0, std::numeric_limits<double>::infinity()); },
                     {"[rand_uniform]", "finite bounds"});
  test::expect_error([&] { rand_uniform({2}, gen, 1000.5, 1001.0, DType::bf16); },
                     {"[rand_uniform]", "no bf16 value lies in [1000.5, 1001)"});
  test::expect_error([&] { rand_uniform({2}, gen, 0.0, 1.0, DType::i64); },
                     {"[random]", "floating-point", "i64"});
}
