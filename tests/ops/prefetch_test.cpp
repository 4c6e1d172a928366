// ops::prefetch off a GPU: a hint with nothing to do, which leaves every value as it was.
#include <gtest/gtest.h>

#include "support/test_util.h"
#include "wick/wick.h"

namespace wick::test {
namespace {

TEST(Prefetch, OnTheCpuChangesNothing) {
  Generator gen = fresh_generator();
  const Tensor a = randn(gen, {5, 7}), b = randn(gen, {3}, DType::bf16);
  const std::vector<double> before = values(a);
  ops::prefetch({a, b.narrow(0, 1, 2), Tensor(), Tensor::empty({0})});
  ops::prefetch({});
  EXPECT_EQ(values(a), before);
}

}  // namespace
}  // namespace wick::test
