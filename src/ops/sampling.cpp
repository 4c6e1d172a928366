#include "wick/ops/sampling.h"

#include "backend/cpu/kernels.h"
#ifdef WICK_WITH_CUDA
#include "backend/cuda/kernels.h"
#endif
#include "ops/check.h"
#include "ops/dispatch.h"

namespace wick::ops {
namespace {

struct FilterCall {
  const Tensor& logits;
  int64_t k;
  double top_p;
  const Tensor& out;
};

struct SampleCall {
  const Tensor& logits;
  uint64_t seed;
  uint64_t draw;
  const Tensor& out;
};

void check_logits(std::string_view op, const Tensor& logits) {
  check_floating(op, "logits", logits);
  if (logits.dim() == 0 || logits.size(-1) == 0)
    fail(op, "logits need a non-empty last axis, got {}", logits.str());
}

Tensor run_filter(std::string_view op, const Tensor& logits, int64_t k, double top_p) {
  Tensor out = Tensor::empty(logits.shape(), logits.dtype(), logits.device());
  static const std::vector<Implementation<FilterCall>> table = {
      {"cpu", "a cpu tensor", [](const FilterCall& c) { return on_cpu({&c.logits}); },
       [](const FilterCall& c) {
         if (c.k > 0) {
           cpu::top_k_filter(c.logits, c.k, c.out);
         } else {
           cpu::top_p_filter(c.logits, c.top_p, c.out);
         }
       }},
#ifdef WICK_WITH_CUDA
      {"cuda", "a cuda tensor", [](const FilterCall& c) { return on_cuda({&c.logits}); },
       [](const FilterCall& c) {
         if (c.k > 0) {
           cuda::top_k_filter(c.logits, c.k, c.out);
         } else {
           cuda::top_p_filter(c.logits, c.top_p, c.out);
         }
       }},
#endif
  };
  dispatch(op, table, FilterCall{logits, k, top_p, out}, logits.str());
  return out;
}

}  // namespace

Tensor top_k_filter(const Tensor& logits, int64_t k) {
  check_logits("top_k_filter", logits);
  if (k <= 0 || k >= logits.size(-1)) return logits.clone();
  return run_filter("top_k_filter", logits, k, 1.0);
}

Tensor top_p_filter(const Tensor& logits, double top_p) {
  check_logits("top_p_filter", logits);
  if (!(top_p > 0.0 && top_p <= 1.0)) fail("top_p_filter", "top_p must be in (0, 1], got {}", top_p);
  if (top_p == 1.0) return logits.clone();
  return run_filter("top_p_filter", logits, 0, top_p);
}

Tensor sample_multinomial(const Tensor& logits, Generator& generator) {
  constexpr std::string_view op = "sample_multinomial";
  check_logits(op, logits);
  Tensor out =
      Tensor::empty(Shape(logits.shape().begin(), logits.shape().end() - 1), DType::i64, logits.device());
  static const std::vector<Implementation<SampleCall>> table = {
      {"cpu", "a cpu tensor", [](const SampleCall& c) { return on_cpu({&c.logits}); },
       [](const SampleCall& c) { cpu::sample_multinomial(c.logits, c.seed, c.draw, c.out); }},
#ifdef WICK_WITH_CUDA
      {"cuda", "a cuda tensor", [](const SampleCall& c) { return on_cuda({&c.logits}); },
       [](const SampleCall& c) { cuda::sample_multinomial(c.logits, c.seed, c.draw, c.out); }},
#endif
  };
  dispatch(op, table, SampleCall{logits, generator.seed(), generator.next_draw(), out}, logits.str());
  return out;
}

}  // namespace wick::ops
