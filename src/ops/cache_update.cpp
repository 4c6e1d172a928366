#include "wick/ops/cache_update.h"

#include "backend/cpu/kernels.h"
#ifdef WICK_WITH_CUDA
#include "backend/cuda/kernels.h"
#endif
#include "ops/check.h"
#include "ops/dispatch.h"

namespace wick::ops {
namespace {

struct WriteCall {
  const Tensor& cache;
  const Tensor& values;
  const Tensor& positions;
};

struct IncrementCall {
  const Tensor& t;
  int64_t step;
};

}  // namespace

void write_at_positions(const Tensor& cache, const Tensor& values, const Tensor& positions) {
  constexpr std::string_view op = "write_at_positions";
  check_floating(op, "cache", cache);
  check_floating(op, "values", values);
  check_rank(op, "cache", cache, 4);
  check_shape(op, "values", values, {cache.size(0), cache.size(1), 1, cache.size(3)});
  check_same_dtype(op, {{"cache", &cache}, {"values", &values}});
  check_defined(op, "positions", positions);
  if (positions.dtype() != DType::i64) fail(op, "positions must be i64, got {}", positions.str());
  check_shape(op, "positions", positions, {cache.size(0)});
  check_same_device(op, {{"cache", &cache}, {"values", &values}, {"positions", &positions}});
  if (cache.stride(3) != 1) fail(op, "the cache's last axis must be contiguous, got {}", cache.str());
  static const std::vector<Implementation<WriteCall>> table = {
      {"cpu", "cpu tensors", [](const WriteCall& c) { return on_cpu({&c.cache}); },
       [](const WriteCall& c) { cpu::write_at_positions(c.cache, c.values, c.positions); }},
#ifdef WICK_WITH_CUDA
      {"cuda", "cuda tensors", [](const WriteCall& c) { return on_cuda({&c.cache}); },
       [](const WriteCall& c) { cuda::write_at_positions(c.cache, c.values, c.positions); }},
#endif
  };
  dispatch(op, table, WriteCall{cache, values, positions},
           describe({{"cache", &cache}, {"values", &values}}));
}

void increment(const Tensor& t, int64_t step) {
  constexpr std::string_view op = "increment";
  check_defined(op, "t", t);
  if (t.dtype() != DType::i64 || !t.is_contiguous()) fail(op, "needs a dense i64 tensor, got {}", t.str());
  static const std::vector<Implementation<IncrementCall>> table = {
      {"cpu", "cpu tensors", [](const IncrementCall& c) { return on_cpu({&c.t}); },
       [](const IncrementCall& c) { cpu::increment(c.t, c.step); }},
#ifdef WICK_WITH_CUDA
      {"cuda", "cuda tensors", [](const IncrementCall& c) { return on_cuda({&c.t}); },
       [](const IncrementCall& c) { cuda::increment(c.t, c.step); }},
#endif
  };
  dispatch(op, table, IncrementCall{t, step}, describe({{"t", &t}}));
}

}  // namespace wick::ops
