#include "wick/generate/sampler.h"

#include <cmath>

#include "wick/error.h"
#include "wick/ops.h"

namespace wick::generate {

void SamplingOptions::validate() const {
  if (!(temperature >= 0) || !std::isfinite(temperature))
    fail("sampler", "temperature must be >= 0 (0 for greedy), got {}", temperature);
  if (top_k < 0) fail("sampler", "top_k must be >= 0 (0 for off), got {}", top_k);
  if (!(top_p > 0 && top_p <= 1)) fail("sampler", "top_p must be in (0, 1], got {}", top_p);
  if (!(min_p >= 0 && min_p <= 1)) fail("sampler", "min_p must be in [0, 1], got {}", min_p);
  if (!(repetition_penalty > 0))
    fail("sampler", "repetition_penalty must be > 0, got {}", repetition_penalty);
  if (!std::isfinite(frequency_penalty) || !std::isfinite(presence_penalty))
    fail("sampler", "frequency and presence penalties must be finite, got {} and {}", frequency_penalty,
         presence_penalty);
}

Sampler::Sampler(const SamplingOptions& options, int64_t vocab, Device device)
    : options_(options), vocab_(vocab), device_(device), generator_(options.seed) {
  options_.validate();
  if (penalized()) counts_.assign(static_cast<size_t>(vocab), 0.0f);
}

bool Sampler::penalized() const {
  return options_.repetition_penalty != 1.0 || options_.frequency_penalty != 0.0 ||
         options_.presence_penalty != 0.0;
}

void Sampler::observe(const std::vector<int32_t>& ids) {
  if (!penalized()) return;
  for (int32_t id : ids) {
    if (id < 0 || id >= vocab_) fail("sampler", "token id {} is outside the vocabulary of {}", id, vocab_);
    counts_[static_cast<size_t>(id)] += 1.0f;
  }
}

int32_t Sampler::next(const Tensor& logits_in) {
  Tensor logits = logits_in.reshape({1, vocab_});
  if (penalized())
    logits = ops::apply_penalties(logits, Tensor::from_vector(counts_, {1, vocab_}, logits.device()),
                                  options_.repetition_penalty, options_.frequency_penalty,
                                  options_.presence_penalty);
  if (options_.temperature == 0.0) return static_cast<int32_t>(ops::argmax(logits).to_vector<int64_t>()[0]);
  if (options_.temperature != 1.0) logits = ops::scale(logits, 1.0 / options_.temperature);
  if (options_.top_k > 0) logits = ops::top_k_filter(logits, options_.top_k);
  if (options_.top_p < 1.0) logits = ops::top_p_filter(logits, options_.top_p);
  if (options_.min_p > 0.0) logits = ops::min_p_filter(logits, options_.min_p);
  return static_cast<int32_t>(ops::sample_multinomial(logits, generator_).to_vector<int64_t>()[0]);
}

}  // namespace wick::generate
