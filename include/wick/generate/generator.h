// Text generation with a decoder: the prompt is prefilled in one pass into a preallocated KV cache, then one
// token per step, until an EOS id, a stop string (matched on the decoded text) or the token limit.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "wick/generate/sampler.h"
#include "wick/io/tokenizer.h"
#include "wick/models/decoder.h"

namespace wick::generate {

struct GenerationOptions {
  int64_t max_new_tokens = 128;
  std::vector<int32_t> eos_ids;           // stop after producing any of these (not included in the text)
  std::vector<std::string> stop_strings;  // stop when the text contains one (the text is cut before it)
  SamplingOptions sampling;
  // A LoRA adapter applied unmerged (on the model's device and dtype), or none.
  const lora::LoraAdapter* adapter = nullptr;
  // Greedy decoding (temperature 0, no penalties) keeps the positions on the device and, on a GPU, replays
  // each step as one captured CUDA graph. False runs every step eagerly (the reference path).
  bool device_steps = true;
};

struct GenerationResult {
  std::vector<int32_t> tokens;  // generated ids (an EOS that stopped generation excluded)
  std::string text;             // their decoded text (empty without a tokenizer)
  std::string stop_reason;      // "eos", "stop string", "max tokens", "context" (the model's end)
  int64_t prompt_tokens = 0;
  double prefill_seconds = 0, decode_seconds = 0;
};

// `tokenizer` may be null (ids only). `on_text` receives the text as it becomes complete UTF-8.
GenerationResult generate(const models::Decoder& model, const io::Tokenizer* tokenizer,
                          const std::vector<int32_t>& prompt, const GenerationOptions& options,
                          const std::function<void(std::string_view)>& on_text = {});

// Several prompts of any lengths at once: each is prefilled on its own, then all decode together, one batched
// forward per step, each row at its own position; each stops on its own. on_text(i, text) streams sequence i.
// Greedy results equal generate() on each prompt alone.
std::vector<GenerationResult> generate_batch(
    const models::Decoder& model, const io::Tokenizer* tokenizer,
    const std::vector<std::vector<int32_t>>& prompts, const GenerationOptions& options,
    const std::function<void(size_t, std::string_view)>& on_text = {});

}  // namespace wick::generate
