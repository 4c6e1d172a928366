#include "wick/generate/generator.h"

#include <algorithm>
#include <chrono>
#include <optional>

#include "wick/error.h"
#include "wick/ops.h"

namespace wick::generate {
namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

GenerationResult generate(const models::Decoder& model, const io::Tokenizer* tokenizer,
                          const std::vector<int32_t>& prompt, const GenerationOptions& options,
                          const std::function<void(std::string_view)>& on_text) {
  const auto& config = model.config();
  const int64_t prompt_length = static_cast<int64_t>(prompt.size());
  if (prompt.empty()) fail("generate", "the prompt is empty");
  if (options.max_new_tokens < 0)
    fail("generate", "max_new_tokens must be >= 0, got {}", options.max_new_tokens);
  if (prompt_length + options.max_new_tokens > config.max_position_embeddings)
    fail("generate", "a prompt of {} tokens plus {} new ones exceeds the model's context of {}",
         prompt_length, options.max_new_tokens, config.max_position_embeddings);
  for (size_t i = 0; i < prompt.size(); ++i)
    if (prompt[i] < 0 || prompt[i] >= config.vocab_size)
      fail("generate", "prompt token {} at position {} is outside the model's vocabulary of {}", prompt[i], i,
           config.vocab_size);
  Sampler sampler(options.sampling, config.vocab_size, model.device());
  sampler.observe(prompt);
  models::KvCache cache(config, 1, prompt_length + std::max<int64_t>(options.max_new_tokens, 1),
                        model.dtype(), model.device());
  GenerationResult result;
  result.prompt_tokens = prompt_length;
  std::optional<io::StreamDecoder> stream;
  if (tokenizer) stream.emplace(tokenizer->decode_stream(true));

  auto start = std::chrono::steady_clock::now();
  Tensor logits = model.forward(Tensor::from_vector(prompt, {1, prompt_length}), &cache);
  result.stop_reason = "max tokens";
  for (int64_t step = 0; step < options.max_new_tokens; ++step) {
    const int32_t id = sampler.next(logits.select(1, logits.size(1) - 1));
    if (step == 0) {
      result.prefill_seconds = seconds_since(start);
      start = std::chrono::steady_clock::now();
    }
    if (std::find(options.eos_ids.begin(), options.eos_ids.end(), id) != options.eos_ids.end()) {
      result.stop_reason = "eos";
      break;
    }
    result.tokens.push_back(id);
    sampler.observe({id});
    if (stream) {
      std::string piece = stream->step(id);
      const size_t before = result.text.size();
      result.text += piece;
      // A stop string may span pieces: search the text from just before the new piece.
      bool stopped = false;
      for (const auto& stop : options.stop_strings) {
        if (stop.empty()) continue;
        const size_t from = before >= stop.size() ? before - stop.size() + 1 : 0;
        const size_t at = result.text.find(stop, from);
        if (at != std::string::npos) {
          if (on_text && at > before) on_text(std::string_view(result.text).substr(before, at - before));
          result.text.resize(at);
          stopped = true;
          break;
        }
      }
      if (stopped) {
        result.stop_reason = "stop string";
        break;
      }
      if (on_text && !piece.empty()) on_text(piece);
    }
    if (step + 1 < options.max_new_tokens)
      logits = model.forward(Tensor::from_vector<int32_t>({id}, {1, 1}), &cache);
  }
  if (stream && result.stop_reason != "stop string") {
    const std::string rest = stream->flush();
    result.text += rest;
    if (on_text && !rest.empty()) on_text(rest);
  }
  result.decode_seconds = seconds_since(start);
  return result;
}

}  // namespace wick::generate
