// The Qwen2 and Llama decoders against transformers' outputs for tiny random-weight models (golden files made
// by tests/models/make_golden.py): full-sequence logits, KV-cache steps equal to full recomputation, greedy
// continuations equal to transformers' generate, and clear errors for mismatched files.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "support/test_util.h"
#include "wick/io/safetensors.h"
#include "wick/lora/adapter.h"
#include "wick/models/decoder.h"

#include <nlohmann/json.hpp>

namespace wick::test {
namespace {

std::string model_dir(const std::string& name) {
  return std::string(WICK_TEST_DATA_DIR) + "/models/" + name;
}

io::SafetensorsFile golden(const std::string& name) {
  return io::SafetensorsFile::open(model_dir(name) + "/golden.safetensors");
}

models::Decoder load(const std::string& name, DType dtype = DType::f32) {
  const auto config = models::load_config(model_dir(name));
  return models::Decoder(config, models::CheckpointSource::open(model_dir(name)), Device::cpu(), dtype);
}

class DecoderGolden : public ::testing::TestWithParam<std::string> {};

INSTANTIATE_TEST_SUITE_P(TinyModels, DecoderGolden, ::testing::Values("tiny-qwen2", "tiny-llama"),
                         [](const auto& info) { return info.param == "tiny-qwen2" ? "Qwen2" : "Llama"; });

TEST_P(DecoderGolden, LogitsMatchTransformers) {
  const auto g = golden(GetParam());
  const Tensor ids = g.load("input_ids"), expected = g.load("logits", Device::cpu(), DType::f64);
  EXPECT_LE(relative_error(load(GetParam()).forward(ids), expected), 1e-5);
  EXPECT_LE(relative_error(load(GetParam(), DType::f64).forward(ids), expected), 1e-5);
}

TEST_P(DecoderGolden, CacheStepsEqualFullRecomputation) {
  const auto g = golden(GetParam());
  const auto model = load(GetParam());
  const Tensor ids = g.load("input_ids");  // [2, 9]
  const Tensor full = model.forward(ids);
  models::KvCache cache(model.config(), 2, 16, DType::f32, Device::cpu());
  const Tensor prefill = model.forward(ids.narrow(1, 0, 4), &cache);
  EXPECT_LE(relative_error(prefill, full.narrow(1, 0, 4).contiguous()), 1e-5);
  for (int64_t t = 4; t < 9; ++t) {
    const Tensor step = model.forward(ids.narrow(1, t, 1), &cache);
    EXPECT_LE(relative_error(step, full.narrow(1, t, 1).contiguous()), 1e-5) << "position " << t;
  }
  EXPECT_EQ(cache.length(), 9);
}

TEST_P(DecoderGolden, GreedyContinuationMatchesGenerate) {
  const auto g = golden(GetParam());
  const auto model = load(GetParam());
  const std::vector<int64_t> expected = g.load("greedy_ids").to_vector<int64_t>();
  Tensor next = g.load("greedy_prompt");
  std::vector<int64_t> produced = next.to_vector<int64_t>();
  models::KvCache cache(model.config(), 1, 64, DType::f32, Device::cpu());
  while (produced.size() < expected.size()) {
    const Tensor logits = model.forward(next, &cache);
    const int64_t id = ops::argmax(logits.select(1, logits.size(1) - 1)).to_vector<int64_t>()[0];
    produced.push_back(id);
    next = Tensor::from_vector<int64_t>({id}, {1, 1});
  }
  EXPECT_EQ(produced, expected);
}

// A decode step at device-held positions (the fused steps where no adapter applies, the plain ops where one
// does) gives a ragged cache step's logits and cache entries, each row at its own position.
TEST_P(DecoderGolden, StepAtPositionsEqualsTheCacheStep) {
  const auto model = load(GetParam());
  const auto& config = model.config();
  Generator gen = fresh_generator();
  const auto adapter_for = [&](std::vector<lora::Projection> targets) {
    lora::LoraConfig lora_config;
    lora_config.rank = 4;
    lora_config.targets = std::move(targets);
    auto adapter = lora::LoraAdapter::create(config, lora_config, gen.seed(), Device::cpu(), DType::f32);
    adapter.flat().copy_(rand_normal(adapter.flat().shape(), gen, 0.0, 0.05, DType::f32));
    return adapter;
  };
  using lora::Projection;
  const lora::LoraAdapter some = adapter_for({Projection::q, Projection::o, Projection::down});
  const lora::LoraAdapter all =
      adapter_for(std::vector<Projection>(lora::kProjections.begin(), lora::kProjections.end()));
  const std::vector<std::vector<int32_t>> prompts = {{5, 9, 77, 3, 12}, {64, 2, 19}};
  for (const lora::LoraAdapter* adapter : {static_cast<const lora::LoraAdapter*>(nullptr), &some, &all}) {
    SCOPED_TRACE(adapter == nullptr ? "no adapter" : adapter == &some ? "q, o, down adapted" : "all adapted");
    models::KvCache ragged(config, 2, 8, DType::f32, Device::cpu()),
        at_positions(config, 2, 8, DType::f32, Device::cpu());
    for (int64_t row = 0; row < 2; ++row) {
      const auto& prompt = prompts[static_cast<size_t>(row)];
      models::KvCache single(config, 1, static_cast<int64_t>(prompt.size()), DType::f32, Device::cpu());
      model.forward(Tensor::from_vector(prompt, {1, static_cast<int64_t>(prompt.size())}), &single, adapter);
      ragged.copy_row(row, single);
      at_positions.copy_row(row, single);
    }
    const Tensor expected =
        model.forward_last(Tensor::from_vector<int32_t>({33, 7}, {2, 1}), &ragged, adapter);
    const Tensor logits = model.forward_at_positions(
        Tensor::from_vector<int64_t>({33, 7}, {2, 1}), Tensor::from_vector<int64_t>({5, 3}, {2}),
        Tensor::from_vector<int64_t>({6, 4}, {2}), at_positions, adapter);
    EXPECT_LE(relative_error(logits, expected), 1e-5);
    for (int64_t layer = 0; layer < config.num_hidden_layers; ++layer)
      for (int64_t row = 0; row < 2; ++row) {
        const int64_t filled = row == 0 ? 6 : 4;  // the prompt and the new token
        const auto part = [&](const Tensor& t) { return t.narrow(0, row, 1).narrow(2, 0, filled); };
        EXPECT_LE(relative_error(part(at_positions.keys(layer)), part(ragged.keys(layer))), 1e-6)
            << "layer " << layer << " row " << row;
        EXPECT_LE(relative_error(part(at_positions.values(layer)), part(ragged.values(layer))), 1e-6)
            << "layer " << layer << " row " << row;
      }
  }
}

TEST(Decoder, MismatchedFilesAreClearErrors) {
  auto config = models::load_config(model_dir("tiny-qwen2"));
  const auto weights = models::CheckpointSource::open(model_dir("tiny-qwen2"));
  config.intermediate_size = 100;
  expect_error([&] { models::Decoder(config, weights, Device::cpu(), DType::f32); },
               {"[model]", "model.safetensors",
                "tensor 'model.layers.0.mlp.gate_proj.weight' has shape [160, 64]", "needs [100, 64]"});
  config = models::load_config(model_dir("tiny-qwen2"));
  config.tie_word_embeddings = false;
  expect_error([&] { models::Decoder(config, weights, Device::cpu(), DType::f32); },
               {"[model]", "missing tensor 'lm_head.weight'"});
  const auto model =
      models::Decoder(models::load_config(model_dir("tiny-qwen2")), weights, Device::cpu(), DType::f32);
  models::KvCache cache(model.config(), 1, 4, DType::f32, Device::cpu());
  expect_error(
      [&] {
        model.forward(Tensor::zeros({1, 5}, DType::i64), &cache);
      },
      {"[kv_cache]", "0 cached + 5 new positions exceed the capacity of 4"});
  expect_error([&] { model.forward(Tensor::full({1, 2}, 320, DType::i64)); }, {"[embedding]", "id 320"});
  expect_error([&] { model.forward(Tensor::zeros({1, 129}, DType::i64)); }, {"[decoder]", "context of 128"});
}

TEST(Config, UnknownArchitecturesAndOptionsAreRefused) {
  nlohmann::json j = {{"model_type", "gpt_neox"}, {"vocab_size", 10}};
  expect_error([&] { models::parse_config(j, "x/config.json"); },
               {"[config]", "x/config.json", "model_type 'gpt_neox' is not supported"});
  j = {{"model_type", "llama"},   {"vocab_size", 10},       {"hidden_size", 8},
       {"intermediate_size", 16}, {"num_hidden_layers", 1}, {"num_attention_heads", 2},
       {"num_key_value_heads", 3}};
  expect_error([&] { models::parse_config(j, "c"); }, {"must be a multiple of num_key_value_heads (3)"});
  j["num_key_value_heads"] = 1;
  const auto c = models::parse_config(j, "c");
  EXPECT_EQ(c.head_dim, 4);
  EXPECT_EQ(c.rope_theta, 10000.0);
  EXPECT_FALSE(c.tie_word_embeddings);
  j["rope_scaling"] = {{"rope_type", "yarn"}};
  expect_error([&] { models::parse_config(j, "c"); }, {"rope_scaling"});
  expect_error([] { models::load_config("/nonexistent/model"); },
               {"[config]", "cannot open /nonexistent/model/config.json"});
}

TEST(Config, DefaultsFollowTheReferencePerArchitecture) {
  nlohmann::json j = {{"model_type", "qwen2"},   {"vocab_size", 10},       {"hidden_size", 8},
                      {"intermediate_size", 16}, {"num_hidden_layers", 1}, {"num_attention_heads", 2}};
  EXPECT_EQ(models::parse_config(j, "c").max_position_embeddings, 32768);
  j["model_type"] = "llama";
  EXPECT_EQ(models::parse_config(j, "c").max_position_embeddings, 2048);
}

TEST(Config, GenerationConfigAddsEndOfSequenceIds) {
  const auto dir =
      std::filesystem::temp_directory_path() / ("wick-generation-config-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  nlohmann::json config = nlohmann::json::parse(std::ifstream(model_dir("tiny-qwen2") + "/config.json"));
  config["eos_token_id"] = 3;
  std::ofstream(dir / "config.json") << config.dump();
  EXPECT_EQ(models::load_config(dir.string()).eos_token_ids, (std::vector<int64_t>{3}));
  std::ofstream(dir / "generation_config.json") << R"({"eos_token_id": [7, 3, 9], "do_sample": true})";
  EXPECT_EQ(models::load_config(dir.string()).eos_token_ids, (std::vector<int64_t>{3, 7, 9}));
  EXPECT_EQ(models::load_config((dir / "config.json").string()).eos_token_ids,
            (std::vector<int64_t>{3, 7, 9}));
  std::ofstream(dir / "generation_config.json") << R"({"eos_token_id": "end"})";
  expect_error(
      [&] { models::load_config(dir.string()); },
      {"[config]", "generation_config.json", "'eos_token_id' must be an integer or a list of integers"});
  std::ofstream(dir / "generation_config.json") << R"({"eos_token_id": [7,)";
  expect_error([&] { models::load_config(dir.string()); },
               {"[config]", "generation_config.json", "malformed JSON"});
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace wick::test
