// Sampling primitives: filters against naive per-row references, the multinomial draw's determinism and its
// frequencies against the softmax probabilities.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "support/test_util.h"

namespace wick::test {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

TEST(TopKFilter, KeepsTheKLargestAndTies) {
  const Tensor logits = Tensor::from_vector<float>({1, 5, 3, 5, -2, 4, 0, 2, 2, 9}, {2, 5});
  EXPECT_EQ(values(ops::top_k_filter(logits, 2)),
            (std::vector<double>{-kInf, 5, -kInf, 5, -kInf, 4, -kInf, -kInf, -kInf, 9}));
  EXPECT_EQ(values(ops::top_k_filter(logits, 3)),
            (std::vector<double>{-kInf, 5, 3, 5, -kInf, 4, -kInf, 2, 2, 9}));
  EXPECT_EQ(values(ops::top_k_filter(logits, 0)), values(logits));
  EXPECT_EQ(values(ops::top_k_filter(logits, 5)), values(logits));
}

TEST(TopKFilter, RandomRowsMatchSortedReference) {
  Generator gen = fresh_generator();
  const Tensor logits = randn(gen, {7, 301}, DType::f32, 3.0);
  const int64_t k = 17;
  const auto in = values(logits), out = values(ops::top_k_filter(logits, k));
  for (int64_t r = 0; r < 7; ++r) {
    std::vector<double> row(in.begin() + r * 301, in.begin() + (r + 1) * 301);
    std::sort(row.rbegin(), row.rend());
    for (int64_t j = 0; j < 301; ++j) {
      const double v = in[r * 301 + j];
      EXPECT_EQ(out[r * 301 + j], v >= row[k - 1] ? v : -kInf);
    }
  }
}

// The reference: sort probabilities, keep tokens until the running total reaches top_p.
std::vector<bool> top_p_reference(const std::vector<double>& logits, double top_p) {
  const double max = *std::max_element(logits.begin(), logits.end());
  std::vector<double> p(logits.size());
  double total = 0;
  for (size_t j = 0; j < p.size(); ++j) total += p[j] = std::exp(logits[j] - max);
  std::vector<size_t> order(p.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return p[a] > p[b]; });
  std::vector<bool> keep(p.size(), false);
  double running = 0;
  for (size_t i : order) {
    keep[i] = true;
    running += p[i] / total;
    if (running >= top_p) break;
  }
  return keep;
}

TEST(TopPFilter, MatchesSortedReference) {
  Generator gen = fresh_generator();
  for (double top_p : {0.05, 0.5, 0.9, 0.999}) {
    const Tensor logits = randn(gen, {5, 257}, DType::f64, 2.0);
    const auto in = values(logits), out = values(ops::top_p_filter(logits, top_p));
    for (int64_t r = 0; r < 5; ++r) {
      const std::vector<double> row(in.begin() + r * 257, in.begin() + (r + 1) * 257);
      const auto keep = top_p_reference(row, top_p);
      for (int64_t j = 0; j < 257; ++j) EXPECT_EQ(out[r * 257 + j], keep[j] ? row[j] : -kInf) << top_p;
    }
  }
}

TEST(TopPFilter, AlwaysKeepsTheMostProbableAndRejectsBadP) {
  const Tensor logits = Tensor::from_vector<float>({10, 0, 0, 0}, {1, 4});
  EXPECT_EQ(values(ops::top_p_filter(logits, 1e-6)), (std::vector<double>{10, -kInf, -kInf, -kInf}));
  expect_error([&] { ops::top_p_filter(logits, 0.0); }, {"[top_p_filter]", "top_p must be in (0, 1], got 0"});
  expect_error([&] { ops::top_p_filter(logits, 1.5); }, {"[top_p_filter]", "got 1.5"});
}

TEST(SampleMultinomial, SameSeedSameDrawsAndFrequenciesMatchProbabilities) {
  const std::vector<float> row = {0.0f, 1.0f, -1.0f, 2.0f, -std::numeric_limits<float>::infinity()};
  const int64_t draws = 40000;
  std::vector<float> logits;
  for (int64_t i = 0; i < draws; ++i) logits.insert(logits.end(), row.begin(), row.end());
  const Tensor x = Tensor::from_vector(logits, {draws, 5});
  Generator a(1234), b(1234);
  const auto ids = ops::sample_multinomial(x, a).to_vector<int64_t>();
  EXPECT_EQ(ids, ops::sample_multinomial(x, b).to_vector<int64_t>());
  EXPECT_NE(ids, ops::sample_multinomial(x, a).to_vector<int64_t>());  // the next draw differs
  std::vector<double> counts(5, 0);
  for (int64_t id : ids) counts[id] += 1;
  EXPECT_EQ(counts[4], 0);  // −∞ is never drawn
  const double total = 1 + std::exp(1.0) + std::exp(-1.0) + std::exp(2.0);
  const std::vector<double> p = {1 / total, std::exp(1.0) / total, std::exp(-1.0) / total,
                                 std::exp(2.0) / total};
  for (int j = 0; j < 4; ++j) {
    const double sd = std::sqrt(draws * p[j] * (1 - p[j]));
    EXPECT_NEAR(counts[j], draws * p[j], 6 * sd) << j;
  }
}

TEST(SampleMultinomial, RowWithoutFiniteLogitIsError) {
  Generator gen(1);
  expect_error(
      [&] {
        ops::sample_multinomial(Tensor::full({2, 3}, -kInf), gen);
      },
      {"[sample_multinomial]", "row 0 has no finite logit"});
}

}  // namespace
}  // namespace wick::test
