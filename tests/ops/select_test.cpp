#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "support/test_util.h"
#include "wick/wick.h"

using namespace wick;

namespace {

const double kNaN = std::numeric_limits<double>::quiet_NaN();

// Indices of one row in rank order: NaN first, then larger values; a stable sort keeps equal values (and
// NaNs) in index order.
std::vector<int64_t> ranked(const std::vector<double>& row) {
  std::vector<int64_t> order(row.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    if (std::isnan(row[a]) || std::isnan(row[b])) return std::isnan(row[a]) && !std::isnan(row[b]);
    return row[a] > row[b];
  });
  return order;
}

// Naive top-k of every last-axis row of x: indices, and values read back from x.
void naive_topk(const Tensor& x, int64_t k, std::vector<int64_t>& indices, std::vector<double>& values) {
  const std::vector<double> v = test::values(x);
  const int64_t cols = x.size(-1);
  indices.clear();
  values.clear();
  for (int64_t r = 0; r * cols < x.numel(); ++r) {
    const std::vector<double> row(v.begin() + r * cols, v.begin() + (r + 1) * cols);
    const std::vector<int64_t> order = ranked(row);
    for (int64_t j = 0; j < k; ++j) {
      indices.push_back(order[j]);
      values.push_back(row[order[j]]);
    }
  }
}

// Equal, with NaN equal to NaN.
void expect_same_values(const std::vector<double>& got, const std::vector<double>& expected) {
  ASSERT_EQ(got.size(), expected.size());
  for (size_t i = 0; i < got.size(); ++i) {
    if (std::isnan(expected[i]))
      EXPECT_TRUE(std::isnan(got[i])) << i;
    else
      EXPECT_EQ(got[i], expected[i]) << i;
  }
}

// Small integers, so that ties are common.
Tensor tied(Generator& gen, const Shape& shape, DType dtype = DType::f32) {
  std::vector<double> v = test::values(rand_uniform(shape, gen, 0.0, 4.0, DType::f64));
  for (double& x : v) x = std::floor(x);
  return Tensor::from_vector(v, shape).to(dtype);
}

}  // namespace

TEST(Argmax, MatchesNaive) {
  Generator gen = test::fresh_generator();
  for (DType dtype : {DType::f32, DType::bf16, DType::f64}) {
    for (const Tensor& x : {test::randn(gen, {4, 17}, dtype), tied(gen, {3, 5, 6}, dtype),
                            tied(gen, {9}, dtype), test::non_contiguous(test::randn(gen, {2, 6, 5}, dtype)),
                            test::randn(gen, {3, 1}, dtype), test::randn(gen, {2, 3000}, dtype)}) {
      SCOPED_TRACE(x.str());
      std::vector<int64_t> indices;
      std::vector<double> values;
      naive_topk(x, 1, indices, values);
      Tensor got = ops::argmax(x);
      EXPECT_EQ(got.dtype(), DType::i64);
      EXPECT_EQ(got.shape(), Shape(x.shape().begin(), x.shape().end() - 1));
      EXPECT_EQ(got.to_vector<int64_t>(), indices);
    }
  }
}

TEST(Argmax, TiesNaNAndInfinities) {
  const double inf = HUGE_VAL;
  Tensor x = Tensor::from_vector<double>({1,    3,    3,    2,     // tie: first
                                          -inf, -inf, -inf, -inf,  // all -inf: 0
                                          1,    kNaN, 5,    kNaN,  // NaN ranks first: first NaN
                                          -1,   inf,  7,    inf,   // inf beats finite, first of two
                                          0.0,  -0.0, 0.0,  -1},   // zeros compare equal: first
                                         {5, 4});
  for (DType dtype : {DType::f32, DType::f64, DType::f16, DType::bf16})
    EXPECT_EQ(ops::argmax(x.to(dtype)).to_vector<int64_t>(), (std::vector<int64_t>{1, 0, 1, 1, 0}))
        << dtype_name(dtype);
}

TEST(TopK, MatchesNaive) {
  Generator gen = test::fresh_generator();
  for (DType dtype : {DType::f32, DType::bf16, DType::f64}) {
    for (const Tensor& x :
         {test::randn(gen, {3, 10}, dtype), tied(gen, {4, 12}, dtype),
          test::non_contiguous(tied(gen, {2, 3, 8}, dtype)), test::randn(gen, {7}, dtype)}) {
      for (int64_t k : {int64_t{1}, int64_t{3}, x.size(-1) - 1, x.size(-1)}) {
        SCOPED_TRACE(testing::Message() << x.str() << " k=" << k);
        std::vector<int64_t> indices;
        std::vector<double> values;
        naive_topk(x, k, indices, values);
        const ops::TopK got = ops::topk(x, k);
        Shape shape = x.shape();
        shape.back() = k;
        EXPECT_EQ(got.values.shape(), shape);
        EXPECT_EQ(got.indices.shape(), shape);
        EXPECT_EQ(got.values.dtype(), dtype);
        EXPECT_EQ(got.indices.dtype(), DType::i64);
        EXPECT_EQ(got.indices.to_vector<int64_t>(), indices);
        EXPECT_EQ(test::values(got.values), values);
      }
    }
  }
}

TEST(TopK, TiesKeepLowerIndexFirstAndNaNRanksFirst) {
  Tensor x = Tensor::from_vector<float>({1, 3, 3, 2, 3, 0,  //
                                         2, 2, 2, 2, 2, 2,  //
                                         0, static_cast<float>(kNaN), 9, static_cast<float>(kNaN), -1, 9},
                                        {3, 6});
  const ops::TopK top = ops::topk(x, 4);
  EXPECT_EQ(top.indices.to_vector<int64_t>(), (std::vector<int64_t>{1, 2, 4, 3, 0, 1, 2, 3, 1, 3, 2, 5}));
  expect_same_values(test::values(top.values), {3, 3, 3, 2, 2, 2, 2, 2, kNaN, kNaN, 9, 9});
  // k == n sorts the whole row.
  const ops::TopK all = ops::topk(x, 6);
  EXPECT_EQ(all.indices.to_vector<int64_t>(),
            (std::vector<int64_t>{1, 2, 4, 3, 0, 5, 0, 1, 2, 3, 4, 5, 1, 3, 2, 5, 0, 4}));
  expect_same_values(test::values(all.values), {3, 3, 3, 2, 1, 0, 2, 2, 2, 2, 2, 2, kNaN, kNaN, 9, 9, 0, -1});
}

TEST(Select, BadInputsAreErrors) {
  using test::expect_error;
  Tensor x = Tensor::zeros({2, 5});
  expect_error([&] { ops::topk(x, 0); }, {"[topk]", "k must be in 1..5", "got 0"});
  expect_error([&] { ops::topk(x, 6); }, {"[topk]", "k must be in 1..5", "got 6"});
  expect_error([&] { ops::topk(x, -1); }, {"[topk]", "got -1"});
  expect_error([&] { ops::topk(Tensor::full({}, 1.0), 1); }, {"[topk]", "rank >= 1"});
  expect_error([&] { ops::topk(Tensor::zeros({3, 0}), 1); }, {"[topk]", "k must be in 1..0"});
  expect_error([&] { ops::topk(Tensor::zeros({5}, DType::i64), 1); }, {"[topk]", "floating-point"});
  expect_error([&] { ops::argmax(Tensor::full({}, 1.0)); }, {"[argmax]", "non-empty last axis"});
  expect_error([&] { ops::argmax(Tensor::zeros({4, 0})); }, {"[argmax]", "non-empty last axis"});
  expect_error([&] { ops::argmax(Tensor::zeros({4}, DType::i32)); }, {"[argmax]", "floating-point"});
}
