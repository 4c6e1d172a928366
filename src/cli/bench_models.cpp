// `wick bench train` and `wick bench generate`: LoRA training and text generation with random bf16 weights of
// Qwen2.5-0.5B's shape (hidden 896, 24 layers, 14 heads over 2 KV heads, intermediate 4864, vocab 151936,
// tied embeddings), for side-by-side runs with bench/train_peft.py and bench/generate_torch.py.
#include <fmt/core.h>
#include <fmt/os.h>

#include <algorithm>
#include <chrono>
#include <cmath>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "wick/cuda.h"
#include "wick/generate/generator.h"
#include "wick/train/trainer.h"
#include "wick/wick.h"

namespace wick::cli {
namespace {

models::ModelConfig qwen25_05b() {
  const nlohmann::json shape = {{"model_type", "qwen2"},      {"vocab_size", 151936},
                                {"hidden_size", 896},         {"intermediate_size", 4864},
                                {"num_hidden_layers", 24},    {"num_attention_heads", 14},
                                {"num_key_value_heads", 2},   {"max_position_embeddings", 32768},
                                {"rope_theta", 1000000.0},    {"rms_norm_eps", 1e-6},
                                {"tie_word_embeddings", true}};
  return models::parse_config(shape, "Qwen2.5-0.5B shape");
}

double median(std::vector<double> v) {
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(v.size() / 2), v.end());
  return v[v.size() / 2];
}

// Multiply-accumulate FLOPs of one training token: forward and input-gradient GEMMs over every frozen weight
// (2 + 2 per parameter; no weight gradients), the LoRA GEMMs (2 forward + 6 backward per LoRA parameter), and
// causal attention (forward 2·2·T/2·d per head, backward 2.5× that).
double train_flops_per_token(const models::ModelConfig& c, int64_t tokens, int64_t lora_params) {
  const double h = static_cast<double>(c.hidden_size),
               q = static_cast<double>(c.num_attention_heads * c.head_dim),
               kv = static_cast<double>(c.num_key_value_heads * c.head_dim),
               inter = static_cast<double>(c.intermediate_size);
  const double per_layer = h * q * 2 + h * kv * 2 + 3 * h * inter;
  const double frozen =
      per_layer * static_cast<double>(c.num_hidden_layers) + h * static_cast<double>(c.vocab_size);
  const double attention =
      3.5 * 2 * 2 * (static_cast<double>(tokens) / 2) * q * static_cast<double>(c.num_hidden_layers);
  return 4 * frozen + 8 * static_cast<double>(lora_params) + attention;
}

void run_train_bench(Device device, int64_t batch, int64_t tokens, int64_t rank, int steps,
                     bool checkpointing, double peak_tflops, const std::string& json_path) {
  const auto config = qwen25_05b();
  const DType dtype = device.is_cuda() ? DType::bf16 : DType::f32;
  const models::Decoder model(config, models::RandomWeights(3), device, dtype);
  lora::LoraConfig lora;
  lora.rank = rank;
  lora.alpha = 2.0 * static_cast<double>(rank);
  lora.targets = std::vector<lora::Projection>(lora::kProjections.begin(), lora::kProjections.end());
  const auto adapter = lora::LoraAdapter::create(config, lora, 1);
  Generator gen(4);
  std::vector<train::Example> examples;
  for (int64_t i = 0; i < batch * 2; ++i) {
    train::Example e;
    for (double v : rand_uniform({tokens}, gen, 0, 151000, DType::f64).to_vector<double>())
      e.ids.push_back(static_cast<int32_t>(v));
    e.learn.assign(static_cast<size_t>(tokens), 1);
    e.learn[0] = 0;
    examples.push_back(std::move(e));
  }
  train::TrainerOptions o;
  o.batch_size = batch;
  o.max_steps = steps + 2;
  o.max_length = tokens;
  o.checkpointing = checkpointing;
  o.lr = 1e-4;
  train::Trainer trainer(model, adapter, examples, {}, o);
  if (device.is_cuda()) {
    synchronize(device);
    cuda::reset_peak_memory(device.index);
  }
  std::vector<double> seconds;
  while (!trainer.done()) seconds.push_back(trainer.train_step().seconds);  // each step ends with a host read
  seconds.erase(seconds.begin(), seconds.begin() + 2);                      // warm-up
  const double step_s = median(seconds), tokens_per_s = static_cast<double>(batch * tokens) / step_s;
  const double flops = train_flops_per_token(config, tokens, adapter.flat().numel()) * tokens_per_s;
  const double peak_gib =
      device.is_cuda() ? static_cast<double>(cuda::memory_stats(device.index).peak_bytes) / (1 << 30) : 0;
  const std::string name =
      fmt::format("train lora r{} {}x{}{}", rank, batch, tokens, checkpointing ? " ckpt" : "");
  fmt::print(
      "{:<32} {:>9.1f} ms/step {:>10.0f} tokens/s {:>7.1f} TFLOP/s (MFU {:.1f}% of {:.0f}) peak {:.2f} GiB\n",
      name, step_s * 1e3, tokens_per_s, flops / 1e12, 100 * flops / (peak_tflops * 1e12), peak_tflops,
      peak_gib);
  if (!json_path.empty())
    fmt::output_file(json_path, fmt::file::WRONLY | fmt::file::CREATE | fmt::file::APPEND)
        .print("{}\n", nlohmann::json{{"name", name},
                                      {"ms", step_s * 1e3},
                                      {"tokens_per_s", tokens_per_s},
                                      {"tflops", flops / 1e12},
                                      {"peak_gib", peak_gib}}
                           .dump());
}

void run_generate_bench(Device device, int64_t batch, int64_t prompt, int64_t new_tokens, int64_t prefill,
                        const std::string& json_path) {
  const auto config = qwen25_05b();
  const DType dtype = device.is_cuda() ? DType::bf16 : DType::f32;
  const models::Decoder model(config, models::RandomWeights(3), device, dtype);
  Generator gen(6);
  auto random_ids = [&](int64_t rows, int64_t n) {
    return rand_uniform({rows, n}, gen, 0, 151000, DType::f64).to(DType::i32);
  };
  // Prefill: one forward over `prefill` tokens into a cache.
  std::vector<double> times;
  for (int r = 0; r < 6; ++r) {
    models::KvCache cache(config, 1, prefill, dtype, device);
    const Tensor ids = random_ids(1, prefill);
    synchronize(device);
    const auto start = std::chrono::steady_clock::now();
    model.forward(ids, &cache);
    synchronize(device);
    times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  times.erase(times.begin());
  const double prefill_s = median(times);
  // Decode: greedy, `new_tokens` steps after a `prompt`-token prefill for each of `batch` rows, ids only.
  generate::GenerationOptions options;
  options.max_new_tokens = new_tokens;
  options.sampling.temperature = 0;
  std::vector<std::vector<int32_t>> prompts;
  for (int64_t b = 0; b < batch; ++b) {
    std::vector<int32_t> p;
    for (double v : random_ids(1, prompt).to_vector<double>()) p.push_back(static_cast<int32_t>(v));
    prompts.push_back(p);
  }
  std::vector<double> decode;
  for (int r = 0; r < 3; ++r) {
    const auto results = generate::generate_batch(model, nullptr, prompts, options);
    int64_t generated = 0;
    for (const auto& result : results) generated += static_cast<int64_t>(result.tokens.size()) - 1;
    decode.push_back(static_cast<double>(generated) / results[0].decode_seconds);
  }
  const double tok_s = median(decode);
  const double weight_bytes = 2.0 * (static_cast<double>(config.vocab_size * config.hidden_size) +
                                     24.0 * (896.0 * 896 * 2 + 896.0 * 128 * 2 + 3 * 896.0 * 4864));
  fmt::print("prefill {} tokens: {:.2f} ms, {:.0f} tokens/s\n", prefill, prefill_s * 1e3,
             prefill / prefill_s);
  fmt::print(
      "decode batch {} (prompt {}, {} new): {:.0f} tokens/s; at batch 1 the weights' bandwidth floor is "
      "{:.0f} tokens/s at 3.35 TB/s ({:.0f}% of it)\n",
      batch, prompt, new_tokens, tok_s, 3.35e12 / weight_bytes,
      100 * tok_s / static_cast<double>(batch) / (3.35e12 / weight_bytes));
  if (!json_path.empty())
    fmt::output_file(json_path, fmt::file::WRONLY | fmt::file::CREATE | fmt::file::APPEND)
        .print("{}\n", nlohmann::json{{"batch", batch},
                                      {"prefill_tokens_per_s", prefill / prefill_s},
                                      {"decode_tokens_per_s", tok_s}}
                           .dump());
}

}  // namespace

void add_model_bench_commands(CLI::App* bench) {
  static std::string device = "cuda", json;
  static int64_t batch = 8, tokens = 1024, rank = 16, prompt = 64, new_tokens = 128, prefill = 2048;
  static int steps = 10;
  static bool checkpointing = false;
  static double peak = 757;
  auto* train = bench->add_subcommand("train", "Time LoRA training steps with a Qwen2.5-0.5B-shaped model");
  train->add_option("--device", device, "cpu or cuda[:N]")->capture_default_str();
  train->add_option("--batch", batch, "sequences per step")->capture_default_str();
  train->add_option("--tokens", tokens, "tokens per sequence")->capture_default_str();
  train->add_option("--rank", rank, "LoRA rank (all 7 projections, alpha 2r)")->capture_default_str();
  train->add_option("--steps", steps, "timed steps (after 2 warm-up steps)")->capture_default_str();
  train->add_flag("--checkpointing", checkpointing, "recompute block activations in the backward");
  train->add_option("--peak-tflops", peak, "GEMM peak for the MFU figure")->capture_default_str();
  train->add_option("--json", json, "append one JSON line to this file");
  train->callback([] {
    run_train_bench(device_from_name(device), batch, tokens, rank, steps, checkpointing, peak, json);
  });
  auto* gen =
      bench->add_subcommand("generate", "Time prefill and greedy decoding with a Qwen2.5-0.5B-shaped model");
  gen->add_option("--device", device, "cpu or cuda[:N]")->capture_default_str();
  gen->add_option("--prompt", prompt, "prompt tokens before decoding")->capture_default_str();
  gen->add_option("--new-tokens", new_tokens, "tokens to generate")->capture_default_str();
  gen->add_option("--prefill", prefill, "tokens of the prefill measurement")->capture_default_str();
  gen->add_option("--json", json, "write one JSON line to this file");
  gen->add_option("--batch", batch, "sequences decoded together")->capture_default_str();
  gen->callback(
      [] { run_generate_bench(device_from_name(device), batch, prompt, new_tokens, prefill, json); });
}

}  // namespace wick::cli
