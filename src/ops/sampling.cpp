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

Tensor min_p_filter(const Tensor& logits, double min_p) {
  check_logits("min_p_filter", logits);
  if (!(min_p >= 0.0 && min_p <= 1.0)) fail("min_p_filter", "min_p must be in [0, 1], got {}", min_p);
  if (min_p == 0.0) return logits.clone();
  struct Call {
    const Tensor& logits;
    double min_p;
    const Tensor& out;
  };
  Tensor out = Tensor::empty(logits.shape(), logits.dtype(), logits.device());
  static const std::vector<Implementation<Call>> table = {
      {"cpu", "a cpu tensor", [](const Call& c) { return on_cpu({&c.logits}); },
       [](const Call& c) { cpu::min_p_filter(c.logits, c.min_p, c.out); }},
#ifdef WICK_WITH_CUDA
      {"cuda", "a cuda tensor", [](const Call& c) { return on_cuda({&c.logits}); },
       [](const Call& c) { cuda::min_p_filter(c.logits, c.min_p, c.out); }},
#endif
  };
  dispatch("min_p_filter", table, Call{logits, min_p, out}, logits.str());
  return out;
}

Tensor apply_penalties(const Tensor& logits, const Tensor& counts, double repetition, double frequency,
                       double presence) {
  constexpr std::string_view op = "apply_penalties";
  check_logits(op, logits);
  check_floating(op, "counts", counts);
  check_shape(op, "counts", counts, logits.shape());
  check_same_device(op, {{"logits", &logits}, {"counts", &counts}});
  if (!(repetition > 0)) fail(op, "repetition penalty must be > 0, got {}", repetition);
  struct Call {
    const Tensor& logits;
    const Tensor& counts;
    double repetition, frequency, presence;
    const Tensor& out;
  };
  Tensor out = Tensor::empty(logits.shape(), logits.dtype(), logits.device());
  static const std::vector<Implementation<Call>> table = {
      {"cpu", "cpu tensors",
       [](const Call& c) {
         return on_cpu({&c.logits, &c.counts});
       },
       [](const Call& c) {
         cpu::apply_penalties(c.logits, c.counts, c.repetition, c.frequency, c.presence, c.out);
       }},
#ifdef WICK_WITH_CUDA
      {"cuda", "cuda tensors",
       [](const Call& c) {
         return on_cuda({&c.logits, &c.counts});
       },
       [](const Call& c) {
         cuda::apply_penalties(c.logits, c.counts, c.repetition, c.frequency, c.presence, c.out);
       }},
#endif
  };
  dispatch(op, table, Call{logits, counts, repetition, frequency, presence, out},
           describe({{"logits", &logits}, {"counts", &counts}}));
  return out;
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
