// `wick generate MODEL --prompt TEXT`: streams a decoder's continuation of a prompt to stdout with the chosen
// sampler, then prints a timing summary (prompt tokens/s, generated tokens/s) to stderr.
#include <fmt/core.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <optional>

#include "cli/commands.h"
#include "wick/error.h"
#include "wick/generate/generator.h"
#include "wick/io/chat_template.h"

namespace wick::cli {
namespace {

struct GenerateOptions {
  std::string model, prompt, prompts_file, adapter, system, device = "cpu", dtype = "auto";
  std::vector<std::string> stop;
  generate::GenerationOptions generation;
  bool no_special = false, chat = false;
};

void print_summary(const generate::GenerationResult& result) {
  const double generated = static_cast<double>(result.tokens.size());
  fmt::print(
      stderr,
      "[{} prompt tokens in {:.3f} s ({:.1f} tok/s); {} generated in {:.3f} s ({:.1f} tok/s); stop: {}]\n",
      result.prompt_tokens, result.prefill_seconds,
      result.prefill_seconds > 0 ? result.prompt_tokens / result.prefill_seconds : 0.0, result.tokens.size(),
      result.decode_seconds, result.decode_seconds > 0 ? generated / result.decode_seconds : 0.0,
      result.stop_reason);
}

generate::GenerationResult stream(const models::Decoder& model, const io::Tokenizer& tokenizer,
                                  const std::vector<int32_t>& ids,
                                  const generate::GenerationOptions& options) {
  auto result = generate::generate(model, &tokenizer, ids, options, [](std::string_view text) {
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fflush(stdout);
  });
  std::fputc('\n', stdout);
  return result;
}

// Several prompts, one per line of a file, generated together; one JSON line per prompt on stdout.
void run_batch(const GenerateOptions& o, const models::Decoder& model, const io::Tokenizer& tokenizer) {
  std::ifstream in(o.prompts_file);
  if (!in) fail("generate", "{}: cannot open the prompts file", o.prompts_file);
  std::optional<io::ChatTemplate> chat;
  if (o.chat) chat.emplace(io::ChatTemplate::load(o.model));
  std::vector<std::string> texts;
  std::vector<std::vector<int32_t>> prompts;
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    texts.push_back(line);
    if (chat) {
      nlohmann::ordered_json messages = nlohmann::ordered_json::array();
      if (!o.system.empty()) messages.push_back({{"role", "system"}, {"content", o.system}});
      messages.push_back({{"role", "user"}, {"content", line}});
      prompts.push_back(tokenizer.encode(chat->render(messages, true), false).ids);
    } else {
      prompts.push_back(tokenizer.encode(line, !o.no_special).ids);
    }
  }
  if (prompts.empty()) fail("generate", "{}: no prompts (one per line)", o.prompts_file);
  const auto results = generate::generate_batch(model, &tokenizer, prompts, o.generation);
  int64_t generated = 0, prompt_tokens = 0;
  for (size_t i = 0; i < results.size(); ++i) {
    generated += static_cast<int64_t>(results[i].tokens.size());
    prompt_tokens += results[i].prompt_tokens;
    fmt::print("{}\n", nlohmann::json{{"prompt", texts[i]},
                                      {"text", results[i].text},
                                      {"tokens", results[i].tokens.size()},
                                      {"stop", results[i].stop_reason}}
                           .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  }
  const double prefill = results[0].prefill_seconds, decode = results[0].decode_seconds;
  fmt::print(
      stderr,
      "[{} prompts: {} prompt tokens in {:.3f} s ({:.1f} tok/s); {} generated in {:.3f} s ({:.1f} tok/s)]\n",
      results.size(), prompt_tokens, prefill,
      prefill > 0 ? static_cast<double>(prompt_tokens) / prefill : 0.0, generated, decode,
      decode > 0 ? static_cast<double>(generated) / decode : 0.0);
}

// Chat: the conversation goes through the model's chat template. With a prompt, one reply; without, turns are
// read from stdin, one line each, until end of input.
void run_chat(const GenerateOptions& o, const models::Decoder& model, const io::Tokenizer& tokenizer) {
  const io::ChatTemplate chat = io::ChatTemplate::load(o.model);
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();
  if (!o.system.empty()) messages.push_back({{"role", "system"}, {"content", o.system}});
  const bool interactive = o.prompt.empty();
  std::string line;
  while (true) {
    if (interactive) {
      fmt::print(stderr, "> ");
      if (!std::getline(std::cin, line)) break;
      if (line.empty()) continue;
    } else {
      line = o.prompt;
    }
    messages.push_back({{"role", "user"}, {"content", line}});
    const auto ids = tokenizer.encode(chat.render(messages, true), false).ids;
    const auto result = stream(model, tokenizer, ids, o.generation);
    print_summary(result);
    messages.push_back({{"role", "assistant"}, {"content", result.text}});
    if (!interactive) break;
  }
}

void run_generate(GenerateOptions o) {
  const auto config = models::load_config(o.model);
  const auto tokenizer = io::Tokenizer::from_file(o.model);
  const Device device = device_from_name(o.device);
  // Weights and the KV cache in bf16 on a GPU (as the checkpoints ship), f32 on the CPU, unless asked.
  const DType dtype =
      o.dtype == "auto" ? (device.is_cuda() ? DType::bf16 : DType::f32) : dtype_from_name(o.dtype);
  const models::Decoder model(config, models::CheckpointSource::open(o.model), device, dtype);
  lora::LoraAdapter adapter;
  if (!o.adapter.empty()) {
    adapter = lora::LoraAdapter::load(o.adapter, config, model.device(), model.dtype());
    o.generation.adapter = &adapter;
  }
  o.generation.stop_strings = o.stop;
  if (o.generation.eos_ids.empty()) {
    for (int64_t id : config.eos_token_ids) o.generation.eos_ids.push_back(static_cast<int32_t>(id));
    if (const auto eos = tokenizer.eos_id()) o.generation.eos_ids.push_back(*eos);
    // Chat turns end with the template's end-of-turn token (ChatML's <|im_end|>, Llama 3's <|eot_id|>).
    if (o.chat)
      for (const char* end : {"<|im_end|>", "<|eot_id|>", "<|end|>"})
        if (const auto id = tokenizer.token_to_id(end)) o.generation.eos_ids.push_back(*id);
  }
  if (!o.prompts_file.empty()) return run_batch(o, model, tokenizer);
  if (o.chat) return run_chat(o, model, tokenizer);
  if (o.prompt.empty()) fail("generate", "give a prompt with -p, or use --chat for a conversation on stdin");
  print_summary(stream(model, tokenizer, tokenizer.encode(o.prompt, !o.no_special).ids, o.generation));
}

}  // namespace

void add_generate_command(CLI::App& app) {
  auto* command =
      app.add_subcommand("generate", "Continue a prompt with a Qwen2/Llama-family model, streaming");
  static GenerateOptions o;
  auto& s = o.generation.sampling;
  command->add_option("model", o.model, "model directory (config.json, safetensors, tokenizer.json)")
      ->required();
  command->add_option("-p,--prompt", o.prompt, "the prompt text (with --chat: the user's message)");
  command->add_option("-i,--prompts", o.prompts_file,
                      "a file of prompts, one per line, generated together; JSON lines out");
  command->add_flag("--chat", o.chat,
                    "apply the model's chat template (without -p: a conversation on stdin)");
  command->add_option("--system", o.system, "system prompt for --chat");
  command->add_option("-n,--max-new-tokens", o.generation.max_new_tokens, "token limit")
      ->capture_default_str();
  command->add_option("--temperature", s.temperature, "0 for greedy")->capture_default_str();
  command->add_option("--top-k", s.top_k, "0 for off")->capture_default_str();
  command->add_option("--top-p", s.top_p, "1 for off")->capture_default_str();
  command->add_option("--min-p", s.min_p, "0 for off")->capture_default_str();
  command->add_option("--repetition-penalty", s.repetition_penalty, "1 for off")->capture_default_str();
  command->add_option("--frequency-penalty", s.frequency_penalty, "0 for off")->capture_default_str();
  command->add_option("--presence-penalty", s.presence_penalty, "0 for off")->capture_default_str();
  command->add_option("--seed", s.seed, "random seed for sampling")->capture_default_str();
  command->add_option("--stop", o.stop, "stop when the text contains this (repeatable)");
  command->add_option("--eos", o.generation.eos_ids, "stop ids (default: the config's and tokenizer's EOS)");
  command->add_option("--adapter", o.adapter, "apply this LoRA adapter folder (PEFT format), unmerged");
  command->add_flag("--no-special-tokens", o.no_special, "do not add the tokenizer's template tokens");
  command->add_option("--device", o.device, "cpu or cuda[:N]")->capture_default_str();
  command->add_option("--dtype", o.dtype, "auto (bf16 on cuda, f32 on cpu), f32, bf16 or f16")
      ->capture_default_str();
  command->callback([] { run_generate(o); });
}

}  // namespace wick::cli
