#include "core/parallel.h"

#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <stdexcept>
#include <utility>
#include <vector>

using namespace wick;

namespace {

// Runs parallel_for and returns how often each index was visited; also checks every chunk is non-empty and
// in range.
std::vector<int> visits(int64_t n, int64_t grain) {
  std::vector<std::atomic<int>> counts(static_cast<size_t>(std::max<int64_t>(n, 0)));
  std::atomic<bool> bad_chunk{false};
  parallel_for(n, grain, [&](int64_t begin, int64_t end) {
    if (begin < 0 || begin >= end || end > n) bad_chunk = true;
    for (int64_t i = begin; i < end && i >= 0 && i < n; ++i) counts[static_cast<size_t>(i)]++;
  });
  EXPECT_FALSE(bad_chunk) << "n=" << n << " grain=" << grain;
  std::vector<int> result;
  for (auto& c : counts) result.push_back(c.load());
  return result;
}

}  // namespace

TEST(Parallel, ThreadCountIsPositive) {
  EXPECT_GE(cpu_threads(), 1);
}

TEST(Parallel, CoversEveryIndexExactlyOnce) {
  for (int64_t n : {0, 1, 2, 3, 5, 8, 17, 100, 1000, 4097, 100003}) {
    for (int64_t grain : {-1, 0, 1, 2, 3, 7, 64, 1000, 1 << 20}) {
      const std::vector<int> counts = visits(n, grain);
      ASSERT_EQ(counts, std::vector<int>(static_cast<size_t>(n), 1)) << "n=" << n << " grain=" << grain;
    }
  }
}

TEST(Parallel, NegativeCountRunsNothing) {
  bool called = false;
  parallel_for(-5, 1, [&](int64_t, int64_t) { called = true; });
  EXPECT_FALSE(called);
}

TEST(Parallel, SmallRangesRunInlineAsOneChunk) {
  std::vector<std::pair<int64_t, int64_t>> chunks;
  parallel_for(10, 10, [&](int64_t begin, int64_t end) { chunks.emplace_back(begin, end); });
  EXPECT_EQ(chunks, (std::vector<std::pair<int64_t, int64_t>>{{0, 10}}));
}

TEST(Parallel, NestedCallsCoverTheProduct) {
  const int64_t outer = 37, inner = 53;
  std::vector<std::atomic<int>> counts(outer * inner);
  parallel_for(outer, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      parallel_for(inner, 1, [&](int64_t b, int64_t e) {
        for (int64_t j = b; j < e; ++j) counts[static_cast<size_t>(i * inner + j)]++;
      });
    }
  });
  for (size_t i = 0; i < counts.size(); ++i) ASSERT_EQ(counts[i].load(), 1) << i;
  // The pool still works normally afterwards.
  EXPECT_EQ(visits(1000, 1), std::vector<int>(1000, 1));
}

TEST(Parallel, ExceptionsPropagate) {
  // Thrown from the last chunk (a pool thread when there is more than one thread) and from the first one
  // (the calling thread).
  for (int64_t throw_at : {int64_t{999}, int64_t{0}}) {
    std::atomic<int64_t> seen{0};
    EXPECT_THROW(parallel_for(1000, 1,
                              [&](int64_t begin, int64_t end) {
                                seen += end - begin;
                                if (begin <= throw_at && throw_at < end) throw std::runtime_error("boom");
                              }),
                 std::runtime_error);
    // Every chunk finished before the call returned.
    EXPECT_EQ(seen.load(), 1000);
  }
  try {
    parallel_for(100, 1, [](int64_t, int64_t) { throw std::invalid_argument("every chunk"); });
    FAIL() << "expected an exception";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "every chunk");
  }
  // Nested: an exception inside an inner call reaches the outer caller.
  EXPECT_THROW(parallel_for(8, 1,
                            [](int64_t, int64_t) {
                              parallel_for(8, 1, [](int64_t b, int64_t) {
                                if (b == 0) throw std::logic_error("inner");
                              });
                            }),
               std::logic_error);
  EXPECT_EQ(visits(5000, 1), std::vector<int>(5000, 1));
}
