// The chunked language-model-head loss equals cross_entropy on the full logits, and its dhidden equals the
// chained backward, for chunk sizes that do and do not divide the token count.
#include <gtest/gtest.h>

#include "support/test_util.h"

namespace wick::test {
namespace {

TEST(LinearCrossEntropy, MatchesFullLogitsForAnyChunking) {
  Generator gen = fresh_generator();
  const Tensor hidden = randn(gen, {11, 16}, DType::f64), weight = randn(gen, {37, 16}, DType::f64);
  const Tensor targets = Tensor::from_vector<int64_t>({3, -100, 36, 0, 5, 5, -100, 12, 1, 2, 30}, {11});
  const Tensor logits = ops::matmul(hidden, weight, false, true);
  const Tensor loss = ops::cross_entropy(logits, targets);
  const Tensor dhidden = ops::matmul(ops::cross_entropy_backward(logits, targets), weight);
  for (int64_t chunk : {1, 4, 11, 64}) {
    const auto result = ops::linear_cross_entropy(hidden, weight, targets, -100, true, chunk);
    EXPECT_NEAR(result.loss.item(), loss.item(), 1e-12) << chunk;
    EXPECT_LE(rel_error(result.dhidden, values(dhidden)), 1e-12) << chunk;
  }
  EXPECT_FALSE(ops::linear_cross_entropy(hidden, weight, targets, -100, false).dhidden.defined());
}

TEST(LinearCrossEntropy, AllIgnoredIsNanAndBadInputsAreErrors) {
  Generator gen = fresh_generator();
  const Tensor hidden = randn(gen, {3, 8}), weight = randn(gen, {10, 8});
  const auto ignored = ops::linear_cross_entropy(hidden, weight, Tensor::full({3}, -100, DType::i64));
  EXPECT_TRUE(std::isnan(ignored.loss.item()));
  EXPECT_EQ(values(ignored.dhidden), std::vector<double>(24, 0.0));
  expect_error(
      [&] {
        ops::linear_cross_entropy(hidden, weight, Tensor::from_vector<int64_t>({1, 10, 2}, {3}));
      },
      {"[linear_cross_entropy]", "target 10 at position 1 is out of range (expected 0..9"});
  expect_error(
      [&] {
        ops::linear_cross_entropy(hidden, randn(gen, {10, 7}), Tensor::zeros({3}, DType::i64));
      },
      {"[linear_cross_entropy]", "weight must be [vocab, 8]"});
}

}  // namespace
}  // namespace wick::test

namespace wick::test {
namespace {

TEST(CrossEntropyWithGrad, EqualsForwardAndBackward) {
  Generator gen = fresh_generator();
  const Tensor logits = randn(gen, {6, 50}, DType::f64, 3.0);
  const Tensor targets = Tensor::from_vector<int64_t>({1, -100, 49, 0, 7, 7}, {6});
  const auto both = ops::cross_entropy_with_grad(logits, targets, -100, 0.5);
  EXPECT_NEAR(both.loss.item(), ops::cross_entropy(logits, targets).item(), 1e-12);
  EXPECT_LE(rel_error(both.dlogits, values(ops::cross_entropy_backward(logits, targets, -100, 0.5))), 1e-12);
}

}  // namespace
}  // namespace wick::test
