// Picks the next token from a row of logits with the reference's sampling semantics, on the logits' device:
// penalties (repetition, frequency, presence) on the tokens seen so far, then temperature, top-k, top-p,
// min-p, and a seeded multinomial draw; temperature 0 is greedy (argmax).
#pragma once

#include <cstdint>
#include <vector>

#include "wick/random.h"
#include "wick/tensor.h"

namespace wick::generate {

struct SamplingOptions {
  double temperature = 1.0;  // 0: greedy
  int64_t top_k = 0;         // 0: off
  double top_p = 1.0;        // 1: off
  double min_p = 0.0;        // 0: off
  double repetition_penalty = 1.0;
  double frequency_penalty = 0.0;
  double presence_penalty = 0.0;
  uint64_t seed = 0;
  // Throws "[sampler] ..." for values outside their ranges.
  void validate() const;
};

class Sampler {
 public:
  Sampler(const SamplingOptions& options, int64_t vocab, Device device);
  // Records tokens of the sequence (prompt and generated) for the penalties.
  void observe(const std::vector<int32_t>& ids);
  // The next token for one row of logits ([vocab] or [1, vocab]).
  int32_t next(const Tensor& logits);

 private:
  bool penalized() const;
  SamplingOptions options_;
  int64_t vocab_;
  Device device_;
  Generator generator_;
  std::vector<float> counts_;
};

}  // namespace wick::generate
