#include <gtest/gtest.h>

#include <cmath>

#include "support/reference.h"
#include "support/test_util.h"
#include "wick/wick.h"

namespace wick {
namespace {

Tensor targets_tensor(const std::vector<int64_t>& ids, DType dtype) {
  return Tensor::from_vector(ids, {static_cast<int64_t>(ids.size())}).to(dtype);
}

// Compares the loss and its gradient (scaled by `grad`) with the float64 reference.
void check_against_reference(const Tensor& logits, const std::vector<int64_t>& ids, DType index_type,
                             int64_t ignore_index, double grad) {
  const int64_t n = logits.size(0), classes = logits.size(1);
  const DType dtype = logits.dtype();
  const Tensor targets = targets_tensor(ids, index_type);
  const ref::Vec x = test::values(logits);
  const Tensor loss = ops::cross_entropy(logits, targets, ignore_index);
  EXPECT_EQ(loss.dim(), 0);
  EXPECT_EQ(loss.dtype(), dtype == DType::f64 ? DType::f64 : DType::f32);
  ref::expect_close(loss, {ref::cross_entropy(x, n, classes, ids, ignore_index)}, test::tolerance(dtype));
  ref::expect_close(ops::cross_entropy_backward(logits, targets, ignore_index, grad),
                    ref::cross_entropy_backward(x, n, classes, ids, ignore_index, grad),
                    test::tolerance(dtype));
}

TEST(CrossEntropy, MatchesReferenceWithIgnoredTargets) {
  Generator gen = test::fresh_generator();
  SCOPED_TRACE(ref::seed_of(gen));
  const std::vector<int64_t> ids = {3, -100, 0, 10, 7, -100, 10};
  for (DType dtype : {DType::f32, DType::f64, DType::bf16, DType::f16}) {
    for (DType index_type : {DType::i32, DType::i64}) {
      SCOPED_TRACE(testing::Message() << dtype_name(dtype) << " " << dtype_name(index_type));
      const Tensor logits = test::non_contiguous(test::randn(gen, {7, 11}, dtype, 3.0));
      check_against_reference(logits, ids, index_type, -100, 1.0);
      check_against_reference(logits, ids, index_type, -100, 2.5);
      // A custom ignore index that is also a valid class id.
      check_against_reference(logits, {3, 10, 0, 10, 7, 1, 10}, index_type, 10, 0.5);
    }
  }
}

TEST(CrossEntropy, NonContiguousTargetsAndSizeOneEdges) {
  Generator gen = test::fresh_generator();
  SCOPED_TRACE(ref::seed_of(gen));
  const Tensor logits = test::randn(gen, {5, 4}, DType::f64);
  const Tensor strided = test::non_contiguous(Tensor::from_vector<int64_t>({1, 3, 0, 2, 2}, {5}));
  ASSERT_FALSE(strided.is_contiguous());
  const ref::Vec x = test::values(logits);
  const std::vector<int64_t> ids = {1, 3, 0, 2, 2};
  ref::expect_close(ops::cross_entropy(logits, strided), {ref::cross_entropy(x, 5, 4, ids, -100)}, 1e-12);
  ref::expect_close(ops::cross_entropy_backward(logits, strided),
                    ref::cross_entropy_backward(x, 5, 4, ids, -100, 1), 1e-12);
  // One row, one class: the loss is exactly zero and so is its gradient.
  const Tensor one = test::randn(gen, {1, 1}, DType::f32, 5.0);
  EXPECT_EQ(ops::cross_entropy(one, targets_tensor({0}, DType::i64)).item(), 0.0);
  EXPECT_EQ(ops::cross_entropy_backward(one, targets_tensor({0}, DType::i32)).item(), 0.0);
  check_against_reference(test::randn(gen, {1, 9}, DType::f32), {4}, DType::i32, -100, 1.0);
  check_against_reference(test::randn(gen, {6, 1}, DType::f32), {0, 0, -100, 0, 0, 0}, DType::i64, -100, 1.0);
}

TEST(CrossEntropy, AllIgnoredIsNanAndZeroGradient) {
  Generator gen = test::fresh_generator();
  for (DType dtype : {DType::f32, DType::f64, DType::bf16}) {
    SCOPED_TRACE(dtype_name(dtype));
    const Tensor logits = test::randn(gen, {3, 5}, dtype);
    const Tensor targets = targets_tensor({-100, -100, -100}, DType::i64);
    EXPECT_TRUE(std::isnan(ops::cross_entropy(logits, targets).item()));
    for (double d : test::values(ops::cross_entropy_backward(logits, targets, -100, 3.0))) EXPECT_EQ(d, 0.0);
  }
}

TEST(CrossEntropy, LargeLogits) {
  Generator gen = test::fresh_generator();
  SCOPED_TRACE(ref::seed_of(gen));
  const std::vector<int64_t> ids = {0, 5, 12, -100, 30};
  for (DType dtype : {DType::f32, DType::f64}) {
    SCOPED_TRACE(dtype_name(dtype));
    // Logits spread over ±1e4, and logits that differ by O(1) on top of a shift of ±1e4 (the loss is shift
    // invariant, so it must stay O(1) and accurate).
    const Tensor wide = test::randn(gen, {5, 31}, dtype, 1e4);
    const Tensor base = test::randn(gen, {5, 31}, dtype);
    for (const Tensor& logits : {wide, ops::add(base, Tensor::full({1}, 1e4, dtype)),
                                 ops::add(base, Tensor::full({1}, -1e4, dtype))}) {
      check_against_reference(logits, ids, DType::i64, -100, 1.0);
    }
  }
}

TEST(CrossEntropy, BackwardMatchesFiniteDifferences) {
  Generator gen = test::fresh_generator();
  SCOPED_TRACE(ref::seed_of(gen));
  const Tensor logits = test::randn(gen, {6, 7}, DType::f64, 2.0);
  const Tensor targets = targets_tensor({6, 0, -1, 3, 3, 1}, DType::i32);
  for (double grad : {1.0, -0.75}) {
    SCOPED_TRACE(testing::Message() << "grad " << grad);
    ref::expect_matches_finite_difference([&](const Tensor& t) { return ops::cross_entropy(t, targets, -1); },
                                          logits, Tensor::full({}, grad, DType::f64),
                                          ops::cross_entropy_backward(logits, targets, -1, grad));
  }
}

TEST(CrossEntropy, BadInputs) {
  Generator gen = test::fresh_generator();
  const Tensor logits = test::randn(gen, {3, 5});
  test::expect_error(
      [&] {
        ops::cross_entropy(logits, targets_tensor({0, 5, 1}, DType::i64));
      },
      {"[cross_entropy]", "target 5 at position 1 is out of range", "0..4"});
  test::expect_error(
      [&] {
        ops::cross_entropy(logits, targets_tensor({0, 1, -1}, DType::i32));
      },
      {"[cross_entropy]", "target -1 at position 2 is out of range"});
  test::expect_error(
      [&] {
        ops::cross_entropy_backward(logits, targets_tensor({7, 1, 1}, DType::i64));
      },
      {"[cross_entropy_backward]", "target 7 at position 0 is out of range"});
  test::expect_error(
      [&] {
        ops::cross_entropy(logits, targets_tensor({0, 1}, DType::i64));
      },
      {"[cross_entropy]", "argument 'targets' must have shape [3]"});
  test::expect_error([&] { ops::cross_entropy(logits, Tensor::full({3}, 1.0)); },
                     {"[cross_entropy]", "'targets' must hold indices (i32 or i64)"});
  test::expect_error([&] { ops::cross_entropy(logits.flatten(), targets_tensor({0}, DType::i64)); },
                     {"[cross_entropy]", "argument 'logits' must have rank 2"});
  test::expect_error(
      [&] {
        ops::cross_entropy(Tensor::zeros({3, 5}, DType::i64), targets_tensor({0, 1, 2}, DType::i64));
      },
      {"[cross_entropy]", "'logits' must be a floating-point tensor"});
  test::expect_error(
      [&] {
        ops::cross_entropy(Tensor::zeros({2, 0}), targets_tensor({-100, -100}, DType::i64));
      },
      {"[cross_entropy]", "at least one class"});
  test::expect_error([&] { ops::cross_entropy_backward(logits, Tensor()); },
                     {"[cross_entropy_backward]", "'targets' is an undefined tensor"});
}

}  // namespace
}  // namespace wick
