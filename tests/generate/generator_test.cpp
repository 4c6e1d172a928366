// Generation on the tiny golden decoders: greedy ids equal transformers' generate, stop conditions, sampler
// options and their errors; the penalty and min-p ops against naive references.
#include <gtest/gtest.h>

#include <cmath>

#include "support/test_util.h"
#include "wick/generate/generator.h"
#include "wick/io/safetensors.h"

namespace wick::test {
namespace {

std::string data(const std::string& path) {
  return std::string(WICK_TEST_DATA_DIR) + "/" + path;
}

models::Decoder tiny(const std::string& name) {
  return models::Decoder(models::load_config(data("models/" + name)),
                         models::CheckpointSource::open(data("models/" + name)), Device::cpu(), DType::f32);
}

std::vector<int32_t> ints(const std::vector<int64_t>& v) {
  return std::vector<int32_t>(v.begin(), v.end());
}

TEST(Generate, GreedyEqualsTransformersGenerate) {
  for (const char* name : {"tiny-qwen2", "tiny-llama"}) {
    const auto golden =
        io::SafetensorsFile::open(data(std::string("models/") + name + "/golden.safetensors"));
    const auto prompt = ints(golden.load("greedy_prompt").to_vector<int64_t>());
    const auto expected = ints(golden.load("greedy_ids").to_vector<int64_t>());
    generate::GenerationOptions options;
    options.max_new_tokens = static_cast<int64_t>(expected.size() - prompt.size());
    options.sampling.temperature = 0;
    const auto result = generate::generate(tiny(name), nullptr, prompt, options);
    EXPECT_EQ(result.tokens, std::vector<int32_t>(expected.begin() + prompt.size(), expected.end())) << name;
    EXPECT_EQ(result.stop_reason, "max tokens");
    EXPECT_EQ(result.prompt_tokens, static_cast<int64_t>(prompt.size()));
  }
}

TEST(Generate, BatchedSequencesEqualEachAlone) {
  for (const char* name : {"tiny-qwen2", "tiny-llama"}) {
    SCOPED_TRACE(name);
    const auto model = tiny(name);
    const std::vector<std::vector<int32_t>> prompts = {{5, 9, 77, 3, 12, 40, 8}, {101}, {64, 2, 19}};
    generate::GenerationOptions options;
    options.max_new_tokens = 20;
    options.sampling.temperature = 0;
    options.eos_ids = {7};  // some rows may stop early while the others go on
    std::vector<std::string> streamed(prompts.size());
    const auto batched = generate::generate_batch(model, nullptr, prompts, options);
    ASSERT_EQ(batched.size(), prompts.size());
    generate::GenerationOptions eager = options;
    eager.device_steps = false;
    const auto batched_eager = generate::generate_batch(model, nullptr, prompts, eager);
    for (size_t i = 0; i < prompts.size(); ++i) {
      const auto alone = generate::generate(model, nullptr, prompts[i], eager);
      EXPECT_EQ(batched[i].tokens, alone.tokens) << "prompt " << i;
      EXPECT_EQ(batched_eager[i].tokens, alone.tokens) << "prompt " << i;
      EXPECT_EQ(batched[i].stop_reason, alone.stop_reason) << "prompt " << i;
      EXPECT_EQ(generate::generate(model, nullptr, prompts[i], options).tokens, alone.tokens)
          << "prompt " << i;
    }
    // Seeded sampling: the same draws batched or alone (one generator per sequence).
    options.sampling.temperature = 0.9;
    options.sampling.seed = 4;
    const auto sampled = generate::generate_batch(model, nullptr, prompts, options);
    for (size_t i = 0; i < prompts.size(); ++i)
      EXPECT_EQ(sampled[i].tokens, generate::generate(model, nullptr, prompts[i], options).tokens) << i;
  }
  // Ragged steps give the logits of full recomputation.
  const auto model = tiny("tiny-qwen2");
  models::KvCache a(model.config(), 1, 8, DType::f32, Device::cpu()),
      b(model.config(), 1, 8, DType::f32, Device::cpu());
  model.forward(Tensor::from_vector(std::vector<int32_t>{1, 2, 3}, {1, 3}), &a);
  model.forward(Tensor::from_vector(std::vector<int32_t>{4}, {1, 1}), &b);
  models::KvCache ragged(model.config(), 2, 8, DType::f32, Device::cpu());
  ragged.copy_row(0, a);
  ragged.copy_row(1, b);
  const Tensor step = model.forward_last(Tensor::from_vector(std::vector<int32_t>{9, 10}, {2, 1}), &ragged);
  const Tensor full0 = model.forward_last(Tensor::from_vector(std::vector<int32_t>{1, 2, 3, 9}, {1, 4}));
  const Tensor full1 = model.forward_last(Tensor::from_vector(std::vector<int32_t>{4, 10}, {1, 2}));
  EXPECT_LE(relative_error(step.select(0, 0), full0.select(0, 0)), 1e-5);
  EXPECT_LE(relative_error(step.select(0, 1), full1.select(0, 0)), 1e-5);
  EXPECT_EQ(ragged.row_lengths(), (std::vector<int64_t>{4, 2}));
  expect_error(
      [&] {
        model.forward(Tensor::from_vector(std::vector<int32_t>{1, 2, 3, 4}, {2, 2}), &ragged);
      },
      {"one token per row"});
  generate::GenerationOptions few;
  few.max_new_tokens = 4;
  expect_error([&] { generate::generate_batch(model, nullptr, {{1}, {}}, few); }, {"prompt 1", "empty"});
}

TEST(Generate, StopsOnEosAndOnStopStrings) {
  const auto model = tiny("tiny-qwen2");
  const auto tokenizer = io::Tokenizer::from_file(data("tokenizers/qwen3"));  // ids < 320 are single bytes
  generate::GenerationOptions options;
  options.max_new_tokens = 24;
  options.sampling.temperature = 0;
  const std::vector<int32_t> prompt = {17, 42, 99};
  std::string streamed;
  const auto full =
      generate::generate(model, &tokenizer, prompt, options, [&](std::string_view s) { streamed += s; });
  ASSERT_EQ(full.tokens.size(), 24u);
  EXPECT_EQ(streamed, full.text);
  EXPECT_EQ(full.text, tokenizer.decode(full.tokens, true));

  options.eos_ids = {full.tokens[5]};
  const auto eos = generate::generate(model, &tokenizer, prompt, options);
  EXPECT_EQ(eos.stop_reason, "eos");
  const size_t first =
      std::find(full.tokens.begin(), full.tokens.end(), full.tokens[5]) - full.tokens.begin();
  EXPECT_EQ(eos.tokens, std::vector<int32_t>(full.tokens.begin(), full.tokens.begin() + first));

  options.eos_ids.clear();
  const std::string stop = full.text.substr(6, 2);
  options.stop_strings = {stop};
  streamed.clear();
  const auto stopped =
      generate::generate(model, &tokenizer, prompt, options, [&](std::string_view s) { streamed += s; });
  EXPECT_EQ(stopped.stop_reason, "stop string");
  EXPECT_EQ(stopped.text, full.text.substr(0, full.text.find(stop)));
  EXPECT_EQ(streamed, stopped.text);
}

TEST(Generate, SeededSamplingIsReproducibleAndBadInputsAreErrors) {
  const auto model = tiny("tiny-llama");
  generate::GenerationOptions options;
  options.max_new_tokens = 16;
  options.sampling.temperature = 0.8;
  options.sampling.top_k = 40;
  options.sampling.top_p = 0.9;
  options.sampling.min_p = 0.01;
  options.sampling.repetition_penalty = 1.3;
  options.sampling.frequency_penalty = 0.2;
  options.sampling.presence_penalty = 0.1;
  options.sampling.seed = 7;
  const std::vector<int32_t> prompt = {1, 2, 3};
  const auto a = generate::generate(model, nullptr, prompt, options);
  EXPECT_EQ(a.tokens, generate::generate(model, nullptr, prompt, options).tokens);
  options.sampling.seed = 8;
  EXPECT_NE(a.tokens, generate::generate(model, nullptr, prompt, options).tokens);

  // More new tokens than the context holds: generation stops where the context ends.
  generate::GenerationOptions long_run;
  long_run.max_new_tokens = 200;
  const auto until_context = generate::generate(model, nullptr, prompt, long_run);
  EXPECT_EQ(until_context.tokens.size(), 125u);
  EXPECT_EQ(until_context.stop_reason, "context");
  long_run.max_new_tokens = 125;
  EXPECT_EQ(generate::generate(model, nullptr, prompt, long_run).stop_reason, "max tokens");
  expect_error(
      [&] { generate::generate(model, nullptr, std::vector<int32_t>(128, 5), options); },
      {"[generate]", "a prompt of 128 tokens leaves no room for new tokens in the model's context of 128"});
  options.max_new_tokens = 4;
  expect_error(
      [&] {
        generate::generate(model, nullptr, {1, 288}, options);
      },
      {"[generate]", "prompt token 288 at position 1 is outside the model's vocabulary of 288"});
  options.sampling.top_p = 1.5;
  expect_error([&] { generate::generate(model, nullptr, prompt, options); },
               {"[sampler]", "top_p must be in (0, 1]"});
  options.sampling.top_p = 1.0;
  options.sampling.temperature = -1;
  expect_error([&] { generate::generate(model, nullptr, prompt, options); },
               {"[sampler]", "temperature must be >= 0"});
}

TEST(Sampling, PenaltiesAndMinPMatchTheReferenceRules) {
  const Tensor logits = Tensor::from_vector<float>({2.0f, -1.0f, 0.5f, -3.0f}, {1, 4});
  const Tensor counts = Tensor::from_vector<float>({2.0f, 1.0f, 0.0f, 3.0f}, {1, 4});
  // seen: positive divided, negative multiplied by 1.5; then minus 0.25·count + 0.5
  const std::vector<double> expected = {2.0 / 1.5 - 1.0, -1.5 - 0.75, 0.5, -4.5 - 1.25};
  EXPECT_LE(rel_error(ops::apply_penalties(logits, counts, 1.5, 0.25, 0.5), expected), 1e-6);
  const Tensor wide = Tensor::from_vector<float>({0.0f, std::log(0.5f), std::log(0.05f), 1.0f}, {1, 4});
  // p ∝ exp(logit): keep those with p >= 0.1·p_max, i.e. logit >= 1 + ln 0.1
  const auto kept = values(ops::min_p_filter(wide, 0.1));
  EXPECT_EQ(kept[0], 0.0);
  EXPECT_FLOAT_EQ(kept[1], std::log(0.5f));
  EXPECT_TRUE(std::isinf(kept[2]) && kept[2] < 0);
  EXPECT_EQ(kept[3], 1.0);
}

}  // namespace
}  // namespace wick::test
