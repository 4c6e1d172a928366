#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <vector>

#include "support/test_util.h"
#include "wick/wick.h"

using namespace wick;

namespace {

using test::randn;
using test::rel_error;
using test::tolerance;

// Flat index into `from` (row-major) of the element that numpy broadcasting places at flat index `i` of `to`.
int64_t source_index(int64_t i, const Shape& to, const Shape& from) {
  int64_t result = 0, scale = 1;
  for (int64_t axis = static_cast<int64_t>(to.size()) - 1, f = static_cast<int64_t>(from.size()) - 1;
       axis >= 0; --axis, --f) {
    const int64_t index = i % to[axis];
    i /= to[axis];
    if (f < 0) continue;
    if (from[f] != 1) result += index * scale;
    scale *= from[f];
  }
  return result;
}

std::vector<double> naive_binary(const Tensor& a, const Tensor& b, const Shape& out,
                                 const std::function<double(double, double)>& op) {
  const std::vector<double> av = test::values(a), bv = test::values(b);
  std::vector<double> result(static_cast<size_t>(shape_numel(out)));
  for (int64_t i = 0; i < shape_numel(out); ++i)
    result[i] = op(av[source_index(i, out, a.shape())], bv[source_index(i, out, b.shape())]);
  return result;
}

// Sums of x down to `shape` in double, and how far a correct f32 (or f64) summation may be from them: the
// classic bound (terms − 1)·u·Σ|x| with unit roundoff u.
struct NaiveSum {
  std::vector<double> sum, bound;
};
NaiveSum naive_sum_to(const Tensor& x, const Shape& shape, double unit_roundoff) {
  const std::vector<double> xv = test::values(x);
  const auto n = static_cast<size_t>(shape_numel(shape));
  NaiveSum result{std::vector<double>(n, 0.0), std::vector<double>(n, 0.0)};
  for (int64_t i = 0; i < x.numel(); ++i) {
    const int64_t at = source_index(i, x.shape(), shape);
    result.sum[at] += xv[i];
    result.bound[at] += std::abs(xv[i]);
  }
  const double terms = n == 0 ? 0.0 : static_cast<double>(x.numel()) / static_cast<double>(n);
  for (double& b : result.bound) b *= terms * unit_roundoff;
  return result;
}

void expect_sums(const Tensor& actual, const NaiveSum& expected) {
  const std::vector<double> got = test::values(actual);
  ASSERT_EQ(got.size(), expected.sum.size());
  for (size_t i = 0; i < got.size(); ++i)
    EXPECT_NEAR(got[i], expected.sum[i], expected.bound[i] + 1e-300) << "at " << i;
}

struct BinaryOp {
  const char* name;
  Tensor (*run)(const Tensor&, const Tensor&);
  std::function<double(double, double)> reference;
};

const std::vector<BinaryOp>& binary_ops() {
  static const std::vector<BinaryOp> list = {
      {"add", ops::add, [](double x, double y) { return x + y; }},
      {"sub", ops::sub, [](double x, double y) { return x - y; }},
      {"mul", ops::mul, [](double x, double y) { return x * y; }},
      {"div", ops::div, [](double x, double y) { return x / y; }},
  };
  return list;
}

const std::vector<std::pair<Shape, Shape>> kShapePairs = {{{2, 3, 4}, {2, 3, 4}},
                                                          {{2, 3, 4}, {4}},
                                                          {{2, 1, 4}, {3, 1}},
                                                          {{}, {2, 3}},
                                                          {{2, 3}, {}},
                                                          {{}, {}},
                                                          {{1}, {5}},
                                                          {{3, 1, 1}, {1, 4, 1}},
                                                          {{5, 1}, {1, 6}},
                                                          {{0, 3}, {3}},
                                                          {{1, 1, 7}, {2, 9, 1}},
                                                          {{4, 1000}, {1000}}};

}  // namespace

TEST(Elementwise, BroadcastingMatchesNaive) {
  Generator gen = test::fresh_generator();
  for (DType dtype : {DType::f32, DType::bf16, DType::f64}) {
    for (const auto& [sa, sb] : kShapePairs) {
      for (const BinaryOp& op : binary_ops()) {
        SCOPED_TRACE(testing::Message()
                     << op.name << " " << dtype_name(dtype) << " " << shape_str(sa) << " " << shape_str(sb));
        Tensor a = randn(gen, sa, dtype), b = randn(gen, sb, dtype);
        Tensor out = op.run(a, b);
        const Shape expected_shape = broadcast_shapes("test", sa, sb);
        ASSERT_EQ(out.shape(), expected_shape);
        EXPECT_EQ(out.dtype(), dtype);
        EXPECT_TRUE(out.is_contiguous());
        EXPECT_LT(rel_error(out, naive_binary(a, b, expected_shape, op.reference)), tolerance(dtype));
      }
    }
  }
}

TEST(Elementwise, NonContiguousInputs) {
  Generator gen = test::fresh_generator();
  for (DType dtype : {DType::f32, DType::bf16}) {
    for (const BinaryOp& op : binary_ops()) {
      SCOPED_TRACE(testing::Message() << op.name << " " << dtype_name(dtype));
      // Transposed storage against a stepped slice, and a stride-0 expanded operand against a transposed one.
      Tensor a = test::non_contiguous(randn(gen, {3, 5, 7}, dtype));
      Tensor b = randn(gen, {5, 14}, dtype).slice(1, 0, 14, 2);
      EXPECT_LT(rel_error(op.run(a, b), naive_binary(a, b, {3, 5, 7}, op.reference)), tolerance(dtype));
      EXPECT_LT(rel_error(op.run(b, a), naive_binary(b, a, {3, 5, 7}, op.reference)), tolerance(dtype));
      Tensor e = randn(gen, {5, 1}, dtype).expand({5, 7});
      Tensor t = randn(gen, {7, 5}, dtype).transpose(0, 1);
      EXPECT_LT(rel_error(op.run(e, t), naive_binary(e, t, {5, 7}, op.reference)), tolerance(dtype));
      Tensor v = test::non_contiguous(randn(gen, {6}, dtype));
      Tensor col = randn(gen, {4, 3}, dtype).narrow(1, 1, 1);  // [4, 1], row stride 3
      EXPECT_LT(rel_error(op.run(v, col), naive_binary(v, col, {4, 6}, op.reference)), tolerance(dtype));
    }
  }
}

TEST(Elementwise, ExactValues) {
  Tensor a = Tensor::from_vector<float>({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor b = Tensor::from_vector<float>({10, 20, 30}, {3});
  EXPECT_EQ(test::values(ops::add(a, b)), (std::vector<double>{11, 22, 33, 14, 25, 36}));
  EXPECT_EQ(test::values(ops::sub(b, a)), (std::vector<double>{9, 18, 27, 6, 15, 24}));
  EXPECT_EQ(test::values(ops::mul(a, Tensor::full({}, -2.0))),
            (std::vector<double>{-2, -4, -6, -8, -10, -12}));
  EXPECT_EQ(test::values(ops::div(b, a.narrow(0, 1, 1))), (std::vector<double>{2.5, 4, 5}));
  EXPECT_EQ(test::values(ops::scale(b, 0.5)), (std::vector<double>{5, 10, 15}));
}

TEST(Elementwise, Scale) {
  Generator gen = test::fresh_generator();
  for (DType dtype : {DType::f32, DType::bf16, DType::f64}) {
    SCOPED_TRACE(dtype_name(dtype));
    for (const Tensor& x :
         {randn(gen, {4, 9}, dtype), test::non_contiguous(randn(gen, {4, 9}, dtype)), randn(gen, {}, dtype),
          randn(gen, {2, 12}, dtype).slice(1, 3, 12, 3), randn(gen, {3, 1}, dtype).expand({2, 3, 4})}) {
      Tensor y = ops::scale(x, -1.75);
      EXPECT_EQ(y.shape(), x.shape());
      EXPECT_EQ(y.dtype(), dtype);
      std::vector<double> expected = test::values(x);
      for (double& v : expected) v *= -1.75;
      EXPECT_LT(rel_error(y, expected), tolerance(dtype));
    }
  }
}

TEST(SumToShape, MatchesNaiveSum) {
  Generator gen = test::fresh_generator();
  const std::vector<std::pair<Shape, Shape>> cases = {{{2, 3, 4}, {4}},
                                                      {{2, 3, 4}, {3, 1}},
                                                      {{2, 3, 4}, {1, 1, 1}},
                                                      {{2, 3, 4}, {}},
                                                      {{2, 3, 4}, {2, 3, 4}},
                                                      {{2, 3, 4}, {2, 1, 4}},
                                                      {{5}, {1}},
                                                      {{}, {}},
                                                      {{6, 1, 5}, {1, 5}},
                                                      {{0, 4}, {4}},
                                                      {{7, 1000}, {1000}},
                                                      {{1000, 3}, {1000, 1}}};
  for (DType dtype : {DType::f32, DType::bf16, DType::f64}) {
    for (const auto& [from, to] : cases) {
      SCOPED_TRACE(testing::Message()
                   << dtype_name(dtype) << " " << shape_str(from) << " -> " << shape_str(to));
      Tensor x = randn(gen, from, dtype);
      Tensor s = ops::sum_to_shape(x, to);
      ASSERT_EQ(s.shape(), to);
      EXPECT_EQ(s.dtype(), dtype == DType::f64 ? DType::f64 : DType::f32);
      // The result is in f32 (f64), so only summation rounding counts, even for bf16 inputs.
      const NaiveSum expected = naive_sum_to(x, to, dtype == DType::f64 ? 0x1p-53 : 0x1p-24);
      expect_sums(s, expected);
      if (from.size() >= 2) expect_sums(ops::sum_to_shape(test::non_contiguous(x), to), expected);
    }
  }
}

// For every y of `shape` and x of the broadcast shape: <broadcast(y), x> == <y, sum_to_shape(x)>.
TEST(SumToShape, IsTheAdjointOfBroadcasting) {
  Generator gen = test::fresh_generator();
  const std::vector<std::pair<Shape, Shape>> cases = {
      {{3, 1}, {2, 3, 4}}, {{}, {5, 2}}, {{1, 4}, {3, 4}}, {{2, 1, 3}, {2, 5, 3}}, {{1}, {1}}};
  for (const auto& [small, big] : cases) {
    SCOPED_TRACE(testing::Message() << shape_str(small) << " -> " << shape_str(big));
    Tensor y = randn(gen, small, DType::f64), x = randn(gen, big, DType::f64);
    const std::vector<double> by = test::values(y.expand(big)), xv = test::values(x);
    const std::vector<double> sx = test::values(ops::sum_to_shape(x, small)), yv = test::values(y);
    double lhs = 0, rhs = 0, scale = 0;
    for (size_t i = 0; i < xv.size(); ++i) {
      lhs += by[i] * xv[i];
      scale += std::abs(by[i] * xv[i]);
    }
    for (size_t i = 0; i < yv.size(); ++i) rhs += yv[i] * sx[i];
    EXPECT_NEAR(lhs, rhs, 1e-12 * scale);
    // And broadcasting through add is what sum_to_shape undoes: sum_to(y + 0·x) = y·(count).
    Tensor zero = Tensor::zeros(big, DType::f64);
    const std::vector<double> folded = test::values(ops::sum_to_shape(ops::add(y, zero), small));
    const double count = static_cast<double>(shape_numel(big) / shape_numel(small));
    for (size_t i = 0; i < yv.size(); ++i)
      EXPECT_NEAR(folded[i], yv[i] * count, 1e-14 * count * std::abs(yv[i]));
  }
}

TEST(Elementwise, BadInputsAreErrors) {
  using test::expect_error;
  Tensor a = Tensor::zeros({2, 3}), b = Tensor::zeros({4});
  expect_error([&] { ops::add(a, b); }, {"[add]", "[2, 3] and [4] cannot be broadcast", "3 vs 4"});
  expect_error(
      [&] {
        ops::mul(Tensor::zeros({2, 3, 4}), Tensor::zeros({3, 1, 1}));
      },
      {"[mul]", "cannot be broadcast"});
  expect_error([&] { ops::sub(a, Tensor::zeros({2, 3}, DType::f64)); }, {"[sub]", "same dtype", "f64"});
  expect_error([&] { ops::div(a, Tensor::zeros({3}, DType::bf16)); }, {"[div]", "same dtype"});
  expect_error([&] { ops::add(Tensor::zeros({3}, DType::i32), Tensor::zeros({3}, DType::i32)); },
               {"[add]", "floating-point"});
  expect_error([&] { ops::scale(Tensor::zeros({3}, DType::i64), 2.0); }, {"[scale]", "floating-point"});
  expect_error([&] { ops::add(a, Tensor()); }, {"[add]", "undefined"});
  expect_error([&] { ops::sum_to_shape(a, {2}); }, {"[sum_to_shape]", "cannot be broadcast"});
  expect_error([&] { ops::sum_to_shape(a, {1, 2, 3}); }, {"[sum_to_shape]", "does not broadcast to x"});
  expect_error(
      [&] {
        ops::sum_to_shape(Tensor::zeros({3}), {2, 3});
      },
      {"[sum_to_shape]", "does not broadcast"});
}
