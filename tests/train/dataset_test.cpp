// Training data: the three record formats with the loss on the right tokens, errors that name the line, the
// batches (padding, packing, seeded shuffles), the validation split, and the learning-rate schedules.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>

#include <nlohmann/json.hpp>

#include "support/test_util.h"
#include "wick/train/dataset.h"
#include "wick/train/schedule.h"

namespace wick::test {
namespace {
namespace fs = std::filesystem;

const std::string kModel = std::string(WICK_TEST_DATA_DIR) + "/models/tiny-qwen2";
const std::string kData = std::string(WICK_TEST_DATA_DIR) + "/train";

const io::Tokenizer& tokenizer() {
  static const io::Tokenizer t = io::Tokenizer::from_file(kModel);
  return t;
}

std::string write_lines(const std::string& name, const std::string& text) {
  const fs::path path =
      fs::temp_directory_path() / ("wick-data-" + name + "-" + std::to_string(::getpid()) + ".jsonl");
  std::ofstream(path) << text;
  return path.string();
}

std::vector<int32_t> learned(const train::Example& e) {
  std::vector<int32_t> ids;
  for (size_t t = 0; t < e.ids.size(); ++t)
    if (e.learn[t]) ids.push_back(e.ids[t]);
  return ids;
}

TEST(TrainData, TextRecordsLearnEveryTokenAndEndWithEos) {
  const auto examples = train::load_examples(kData + "/stories.jsonl", tokenizer(), {});
  ASSERT_EQ(examples.size(), 120u);
  std::ifstream in(kData + "/stories.jsonl");
  std::string first;
  std::getline(in, first);
  auto expected = tokenizer().encode(nlohmann::json::parse(first)["text"].get<std::string>()).ids;
  expected.push_back(*tokenizer().eos_id());
  EXPECT_EQ(examples[0].ids, expected);
  EXPECT_EQ(examples[0].learn.front(), 0);
  EXPECT_EQ(learned(examples[0]).size(), expected.size() - 1);
  EXPECT_EQ(examples[0].line, 1);
}

TEST(TrainData, AlpacaLearnsOnlyTheOutput) {
  const auto examples = train::load_examples(kData + "/alpaca.jsonl", tokenizer(), {});
  std::ifstream in(kData + "/alpaca.jsonl");
  std::string line;
  for (const auto& e : examples) {
    std::getline(in, line);
    const auto record = nlohmann::json::parse(line);
    EXPECT_EQ(tokenizer().decode(learned(e)), record["output"].get<std::string>() + "<|endoftext|>");
    const std::string all = tokenizer().decode(e.ids);
    EXPECT_NE(all.find("### Instruction:\n" + record["instruction"].get<std::string>()), std::string::npos);
    EXPECT_EQ(all.find("### Input:") != std::string::npos, !record["input"].get<std::string>().empty());
  }
}

TEST(TrainData, ChatLearnsOnlyTheAssistantTurns) {
  train::DataOptions options;
  // ChatML, as the tiny model's template renders it.
  options.render_chat = [](const nlohmann::json& messages, bool add_generation_prompt) {
    std::string text;
    for (const auto& m : messages)
      text += "<|im_start|>" + m["role"].get<std::string>() + "\n" + m["content"].get<std::string>() +
              "<|im_end|>\n";
    if (add_generation_prompt) text += "<|im_start|>assistant\n";
    return text;
  };
  const auto e = train::make_example(
      nlohmann::json::parse(
          R"({"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Tom saw a cat."},
          {"role": "user", "content": "More"}, {"role": "assistant", "content": "Mia was glad."}]})"),
      tokenizer(), options, "memory", 1);
  EXPECT_EQ(tokenizer().decode(learned(e)), "Tom saw a cat.<|im_end|>\nMia was glad.<|im_end|>\n");
  EXPECT_EQ(tokenizer().decode(e.ids),
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nTom saw a "
            "cat.<|im_end|>\n<|im_start|>user\nMore"
            "<|im_end|>\n<|im_start|>assistant\nMia was glad.<|im_end|>\n");
  expect_error(
      [&] {
        train::make_example(nlohmann::json::parse(R"({"messages": [{"role": "user", "content": "Hi"}]})"),
                            tokenizer(), options, "memory", 4);
      },
      {"memory:4", "no assistant message"});
  expect_error(
      [&] {
        train::make_example(nlohmann::json::parse(R"({"messages": [{"role": "user", "content": "Hi"}]})"),
                            tokenizer(), {}, "memory", 2);
      },
      {"memory:2", "chat template"});
}

TEST(TrainData, BadRecordsNameTheLine) {
  const std::string bad_json = write_lines("bad", "{\"text\": \"fine\"}\n\n{\"text\": broken}\n");
  expect_error([&] { train::load_examples(bad_json, tokenizer(), {}); }, {bad_json + ":3", "not valid JSON"});
  const std::string unknown = write_lines("unknown", "{\"text\": \"fine\"}\n{\"prompt\": \"x\"}\n");
  expect_error([&] { train::load_examples(unknown, tokenizer(), {}); },
               {unknown + ":2", "expected a record"});
  const std::string wrong_type = write_lines("type", "{\"text\": 5}\n");
  expect_error([&] { train::load_examples(wrong_type, tokenizer(), {}); },
               {wrong_type + ":1", "'text' must be a string"});
  const std::string long_text = write_lines("long", "{\"text\": \"" + std::string(300, 'x') + " y\"}\n");
  train::DataOptions refuse;
  refuse.max_length = 16;
  refuse.truncate = false;
  expect_error([&] { train::load_examples(long_text, tokenizer(), refuse); },
               {long_text + ":1", "exceed max_length 16"});
  refuse.truncate = true;
  EXPECT_EQ(train::load_examples(long_text, tokenizer(), refuse)[0].ids.size(), 16u);
  expect_error([&] { train::load_examples("/nonexistent/data.jsonl", tokenizer(), {}); }, {"cannot open"});
  const std::string empty = write_lines("empty", "\n\n");
  expect_error([&] { train::load_examples(empty, tokenizer(), {}); }, {"no records"});
  for (const auto& p : {bad_json, unknown, wrong_type, long_text, empty}) fs::remove(p);
}

TEST(TrainData, PaddedBatchesShiftTheTargetsAndIgnorePadding) {
  auto examples = train::load_examples(kData + "/stories.jsonl", tokenizer(), {});
  train::BatchPlan plan;
  plan.batch_size = 8;
  plan.seed = 3;
  plan.pad_id = 0;
  const auto batches = train::epoch_batches(examples, plan, 0);
  ASSERT_EQ(batches.size(), 15u);
  std::multiset<std::vector<int32_t>> seen;
  for (const auto& b : batches) {
    const auto ids = b.ids.to_vector<int64_t>();
    const auto targets = b.targets.to_vector<int64_t>();
    const int64_t width = b.ids.size(1);
    int64_t counted = 0;
    for (int64_t r = 0; r < b.ids.size(0); ++r) {
      std::vector<int32_t> row;
      for (int64_t t = 0; t < width; ++t) {
        const size_t i = static_cast<size_t>(r * width + t);
        if (targets[i] != train::kIgnoreIndex) {
          EXPECT_EQ(targets[i], ids[i + 1]);
          ++counted;
        }
        row.push_back(static_cast<int32_t>(ids[i]));
      }
      seen.insert(row);
    }
    EXPECT_EQ(counted, b.counted);
  }
  // Every example appears once per epoch; another epoch has another order, the same seed the same one.
  int64_t total = 0;
  for (const auto& b : batches) total += b.ids.size(0);
  EXPECT_EQ(total, 120);
  EXPECT_EQ(train::epoch_batches(examples, plan, 0)[0].ids.to_vector<int64_t>(),
            batches[0].ids.to_vector<int64_t>());
  EXPECT_NE(train::epoch_batches(examples, plan, 1)[0].ids.to_vector<int64_t>(),
            batches[0].ids.to_vector<int64_t>());
  const auto order = train::shuffled_indices(1000, 9, 2);
  EXPECT_EQ(std::set<int64_t>(order.begin(), order.end()).size(), 1000u);
}

TEST(TrainData, PackingFillsRowsWithEveryToken) {
  auto examples = train::load_examples(kData + "/stories.jsonl", tokenizer(), {});
  int64_t tokens = 0;
  for (const auto& e : examples) tokens += static_cast<int64_t>(e.ids.size());
  train::BatchPlan plan;
  plan.batch_size = 4;
  plan.max_length = 64;
  plan.packing = true;
  const auto batches = train::epoch_batches(examples, plan, 0);
  int64_t rows = 0;
  for (const auto& b : batches) {
    EXPECT_LE(b.ids.size(1), 64);
    rows += b.ids.size(0);
  }
  EXPECT_EQ(rows, (tokens + 63) / 64);
  EXPECT_EQ(batches[0].ids.size(1), 64);
}

TEST(TrainData, ValidationSplitIsSeededAndDisjoint) {
  auto train_set = train::load_examples(kData + "/stories.jsonl", tokenizer(), {});
  std::vector<train::Example> validation;
  train::split_validation(train_set, validation, 0.1, 11);
  EXPECT_EQ(validation.size(), 12u);
  EXPECT_EQ(train_set.size(), 108u);
  std::set<int64_t> lines;
  for (const auto& e : train_set) lines.insert(e.line);
  for (const auto& e : validation) EXPECT_EQ(lines.count(e.line), 0u);
  auto again = train::load_examples(kData + "/stories.jsonl", tokenizer(), {});
  std::vector<train::Example> validation_again;
  train::split_validation(again, validation_again, 0.1, 11);
  EXPECT_EQ(validation_again[0].line, validation[0].line);
  expect_error([&] { train::split_validation(again, validation_again, 1.0, 1); }, {"validation fraction"});
}

TEST(TrainSchedule, MatchesTheWarmupAndDecayFormulas) {
  using train::Schedule;
  EXPECT_DOUBLE_EQ(train::lr_multiplier(Schedule::linear, 0, 2, 10), 0.0);
  EXPECT_DOUBLE_EQ(train::lr_multiplier(Schedule::linear, 1, 2, 10), 0.5);
  EXPECT_DOUBLE_EQ(train::lr_multiplier(Schedule::linear, 2, 2, 10), 1.0);
  EXPECT_DOUBLE_EQ(train::lr_multiplier(Schedule::linear, 6, 2, 10), 0.5);
  EXPECT_DOUBLE_EQ(train::lr_multiplier(Schedule::linear, 10, 2, 10), 0.0);
  EXPECT_DOUBLE_EQ(train::lr_multiplier(Schedule::cosine, 6, 2, 10), 0.5);
  EXPECT_NEAR(train::lr_multiplier(Schedule::cosine, 4, 2, 10), 0.5 * (1 + std::cos(M_PI * 0.25)), 1e-15);
  EXPECT_DOUBLE_EQ(train::lr_multiplier(Schedule::constant, 0, 0, 10), 1.0);
  EXPECT_DOUBLE_EQ(train::lr_multiplier(Schedule::constant, 1, 4, 10), 0.25);
  expect_error([] { train::schedule_from_name("step"); }, {"unknown learning-rate schedule 'step'"});
}

}  // namespace
}  // namespace wick::test
