// Sampling primitives over logits [..., vocab]: filtering and a seeded multinomial draw, on the logits'
// device. Only the chosen ids need to come back to the host.
#pragma once

#include "wick/random.h"
#include "wick/tensor.h"

namespace wick::ops {

// Keeps the k largest logits of each row (ties at the k-th value are kept too) and sets the rest to −∞.
// k <= 0 or k >= vocab keeps everything.
Tensor top_k_filter(const Tensor& logits, int64_t k);

// Keeps the smallest set of most probable tokens of each row (probabilities = softmax(logits)) whose total
// probability reaches top_p, and sets the rest to −∞; the most probable token is always kept, and so is every
// token tied with the least probable one kept. top_p in (0, 1].
Tensor top_p_filter(const Tensor& logits, double top_p);

// Keeps the tokens whose probability is at least min_p times the row's largest (logit >= max + ln(min_p)) and
// sets the rest to −∞. min_p in [0, 1].
Tensor min_p_filter(const Tensor& logits, double min_p);

// The reference's repetition, frequency and presence penalties, given counts [rows, vocab] (f32) of the
// tokens each row has seen: a seen token's logit is divided by `repetition` when positive and multiplied by
// it when negative (once per token, whatever its count), then reduced by frequency·count + presence.
Tensor apply_penalties(const Tensor& logits, const Tensor& counts, double repetition, double frequency,
                       double presence);

// Draws one index per row from softmax(logits) (−∞ logits are never drawn). Row r of draw d uses the Philox
// stream (generator seed, draw d, counter r), so CPU and CUDA draw the same ids from the same logits.
// Returns i64 [...] (the logits' shape without the last axis). A row whose logits are all −∞ is an error on
// the CPU and draws index 0 on CUDA (which does not wait to check).
Tensor sample_multinomial(const Tensor& logits, Generator& generator);

}  // namespace wick::ops
