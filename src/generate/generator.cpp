// Prefill each prompt in one pass, then one token per step. A single sequence uses a uniform KV cache;
// several are prefilled one by one and copied into the rows of a ragged cache, so each row continues at its
// own length and all rows decode together in one batched forward per step.
#include "wick/generate/generator.h"

#include "generate/greedy_steps.h"

#include <algorithm>
#include <chrono>
#include <optional>

#include <fmt/format.h>

#include "wick/error.h"
#include "wick/ops.h"

namespace wick::generate {
namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

struct Sequence {
  Sampler sampler;
  std::optional<io::StreamDecoder> stream;
  GenerationResult result;
  bool done = false;
  int32_t last = 0;
  size_t emitted = 0;  // bytes of result.text already streamed
};

// Bytes at the end of `text` that could be the start of a stop string: they are held back from streaming
// until the next pieces show whether the stop string follows.
size_t held_back(const std::string& text, const std::vector<std::string>& stops) {
  size_t hold = 0;
  for (const auto& stop : stops)
    for (size_t n = std::min(stop.size() - (stop.empty() ? 0 : 1), text.size()); n > hold; --n)
      if (text.compare(text.size() - n, n, stop, 0, n) == 0) {
        hold = n;
        break;
      }
  return hold;
}

void emit_to(Sequence& s, size_t end, const std::function<void(std::string_view)>& on_text) {
  if (end > s.emitted && on_text) on_text(std::string_view(s.result.text).substr(s.emitted, end - s.emitted));
  s.emitted = std::max(s.emitted, end);
}

void check_prompt(const models::ModelConfig& config, const std::vector<int32_t>& prompt,
                  const GenerationOptions& options, size_t index, bool batched) {
  const std::string which = batched ? fmt::format("prompt {}: ", index) : "";
  const int64_t length = static_cast<int64_t>(prompt.size());
  if (prompt.empty()) fail("generate", "{}the prompt is empty", which);
  // A prompt must fit with room for one new token; generation stops where the context ends.
  if (length + std::min<int64_t>(options.max_new_tokens, 1) > config.max_position_embeddings)
    fail("generate", "{}a prompt of {} tokens leaves no room for new tokens in the model's context of {}",
         which, length, config.max_position_embeddings);
  for (size_t i = 0; i < prompt.size(); ++i)
    if (prompt[i] < 0 || prompt[i] >= config.vocab_size)
      fail("generate", "{}prompt token {} at position {} is outside the model's vocabulary of {}", which,
           prompt[i], i, config.vocab_size);
}

// Takes the sampled id: EOS, streaming, stop strings. Marks the sequence done when it stops.
void accept(Sequence& s, int32_t id, const GenerationOptions& options,
            const std::function<void(std::string_view)>& on_text) {
  if (std::find(options.eos_ids.begin(), options.eos_ids.end(), id) != options.eos_ids.end()) {
    s.result.stop_reason = "eos";
    s.done = true;
    return;
  }
  s.result.tokens.push_back(id);
  s.sampler.observe({id});
  s.last = id;
  if (s.stream) {
    const std::string piece = s.stream->step(id);
    const size_t before = s.result.text.size();
    s.result.text += piece;
    // A stop string may span pieces: search the text from just before the new piece.
    for (const auto& stop : options.stop_strings) {
      if (stop.empty()) continue;
      const size_t from = before >= stop.size() ? before - stop.size() + 1 : 0;
      const size_t at = s.result.text.find(stop, from);
      if (at != std::string::npos) {
        emit_to(s, at, on_text);
        s.result.text.resize(at);
        s.result.stop_reason = "stop string";
        s.done = true;
        return;
      }
    }
    emit_to(s, s.result.text.size() - held_back(s.result.text, options.stop_strings), on_text);
  }
  if (static_cast<int64_t>(s.result.tokens.size()) >= options.max_new_tokens) {
    s.result.stop_reason = "max tokens";
    s.done = true;
  }
}

void finish(Sequence& s, const std::function<void(std::string_view)>& on_text) {
  if (s.stream && s.result.stop_reason != "stop string") {
    s.result.text += s.stream->flush();
    emit_to(s, s.result.text.size(), on_text);
  }
}

std::vector<GenerationResult> run(const models::Decoder& model, const io::Tokenizer* tokenizer,
                                  const std::vector<std::vector<int32_t>>& prompts,
                                  const GenerationOptions& options,
                                  const std::function<void(size_t, std::string_view)>& on_text) {
  const auto& config = model.config();
  if (prompts.empty()) fail("generate", "no prompts");
  if (options.max_new_tokens < 0)
    fail("generate", "max_new_tokens must be >= 0, got {}", options.max_new_tokens);
  options.sampling.validate();
  const bool batched = prompts.size() > 1;
  int64_t longest = 0;
  for (size_t i = 0; i < prompts.size(); ++i) {
    check_prompt(config, prompts[i], options, i, batched);
    longest = std::max<int64_t>(longest, static_cast<int64_t>(prompts[i].size()));
  }
  // New tokens stop at the model's context (for the longest prompt, as all rows step together).
  GenerationOptions bounded = options;
  bounded.max_new_tokens = std::min(options.max_new_tokens, config.max_position_embeddings - longest);
  const bool context_bound = bounded.max_new_tokens < options.max_new_tokens;
  const int64_t capacity = longest + std::max<int64_t>(bounded.max_new_tokens, 1);
  const int64_t rows = static_cast<int64_t>(prompts.size());
  std::vector<Sequence> seqs;
  for (const auto& prompt : prompts) {
    Sequence s{Sampler(options.sampling, config.vocab_size, model.device()), std::nullopt, {}, false, 0};
    s.sampler.observe(prompt);
    if (tokenizer) s.stream.emplace(tokenizer->decode_stream(true));
    s.result.prompt_tokens = static_cast<int64_t>(prompt.size());
    s.result.stop_reason = "max tokens";
    s.done = options.max_new_tokens == 0;
    seqs.push_back(std::move(s));
  }
  auto text_of = [&](size_t i) {
    return on_text
               ? std::function<void(std::string_view)>([&on_text, i](std::string_view t) { on_text(i, t); })
               : std::function<void(std::string_view)>();
  };

  // Prefill: the whole prompt in one pass per sequence, each sampling its first token.
  auto start = std::chrono::steady_clock::now();
  models::KvCache cache(config, rows, capacity, model.dtype(), model.device());
  for (size_t i = 0; i < prompts.size(); ++i) {
    const int64_t length = static_cast<int64_t>(prompts[i].size());
    const Tensor ids = Tensor::from_vector(prompts[i], {1, length});
    Tensor logits;
    if (batched) {
      models::KvCache single(config, 1, length, model.dtype(), model.device());
      logits = model.forward_last(ids, &single, options.adapter);
      cache.copy_row(static_cast<int64_t>(i), single);
    } else {
      logits = model.forward_last(ids, &cache, options.adapter);
    }
    if (!seqs[i].done) accept(seqs[i], seqs[i].sampler.next(logits.select(0, 0)), bounded, text_of(i));
  }
  const double prefill_seconds = seconds_since(start);
  start = std::chrono::steady_clock::now();
  auto running = [&] {
    return std::any_of(seqs.begin(), seqs.end(), [](const Sequence& s) { return !s.done; });
  };
  const SamplingOptions& so = options.sampling;
  const bool greedy = so.temperature == 0 && so.repetition_penalty == 1 && so.frequency_penalty == 0 &&
                      so.presence_penalty == 0;
  if (greedy && options.device_steps && running()) {
    // Greedy: positions on the device, each step one graph launch on a GPU; only the ids come back.
    std::vector<int32_t> first;
    std::vector<int64_t> positions;
    for (size_t i = 0; i < seqs.size(); ++i) {
      first.push_back(seqs[i].last);
      positions.push_back(static_cast<int64_t>(prompts[i].size()));
    }
    GreedySteps steps(model, cache, options.adapter, first, positions);
    while (running()) {
      const std::vector<int32_t> next = steps.step();
      for (size_t i = 0; i < seqs.size(); ++i)
        if (!seqs[i].done) accept(seqs[i], next[i], bounded, text_of(i));
    }
  }
  // Decode: one token per unfinished row per step (finished rows repeat their last token; it is discarded).
  while (running()) {
    std::vector<int32_t> next;
    for (const auto& s : seqs) next.push_back(s.last);
    const Tensor logits = model.forward_last(Tensor::from_vector(next, {rows, 1}), &cache, options.adapter);
    for (size_t i = 0; i < seqs.size(); ++i)
      if (!seqs[i].done)
        accept(seqs[i], seqs[i].sampler.next(logits.select(0, static_cast<int64_t>(i))), bounded, text_of(i));
  }
  const double decode_seconds = seconds_since(start);
  std::vector<GenerationResult> results;
  for (size_t i = 0; i < seqs.size(); ++i) {
    finish(seqs[i], text_of(i));
    if (context_bound && seqs[i].result.stop_reason == "max tokens") seqs[i].result.stop_reason = "context";
    seqs[i].result.prefill_seconds = prefill_seconds;
    seqs[i].result.decode_seconds = decode_seconds;
    results.push_back(std::move(seqs[i].result));
  }
  return results;
}

}  // namespace

GenerationResult generate(const models::Decoder& model, const io::Tokenizer* tokenizer,
                          const std::vector<int32_t>& prompt, const GenerationOptions& options,
                          const std::function<void(std::string_view)>& on_text) {
  const auto per_sequence = on_text ? std::function<void(size_t, std::string_view)>(
                                          [&on_text](size_t, std::string_view text) { on_text(text); })
                                    : std::function<void(size_t, std::string_view)>();
  return run(model, tokenizer, {prompt}, options, per_sequence).front();
}

std::vector<GenerationResult> generate_batch(const models::Decoder& model, const io::Tokenizer* tokenizer,
                                             const std::vector<std::vector<int32_t>>& prompts,
                                             const GenerationOptions& options,
                                             const std::function<void(size_t, std::string_view)>& on_text) {
  return run(model, tokenizer, prompts, options, on_text);
}

}  // namespace wick::generate
