#include "wick/train/dataset.h"

#include <algorithm>
#include <fstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "wick/error.h"
#include "wick/random.h"

namespace wick::train {
namespace {

constexpr const char* kAlpacaWithInput =
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request.\n\n### Instruction:\n{}\n\n### Input:\n{}\n\n"
    "### Response:\n";
constexpr const char* kAlpacaWithoutInput =
    "Below is an instruction that describes a task. Write a response that appropriately completes the "
    "request.\n\n### Instruction:\n{}\n\n### Response:\n";

// Text pieces and whether the loss learns them.
struct Piece {
  std::string text;
  bool learn;
  bool special_tokens;  // let the tokenizer add its template tokens (BOS) to this piece
};

std::string string_field(const nlohmann::json& record, const char* key, const std::string& where) {
  const auto& value = record.at(key);
  if (!value.is_string())
    fail("data", "{}: field '{}' must be a string, got {}", where, key, value.type_name());
  return value.get<std::string>();
}

DataFormat detect(const nlohmann::json& record, const std::string& where) {
  if (record.contains("messages")) return DataFormat::chat;
  if (record.contains("instruction") && record.contains("output")) return DataFormat::alpaca;
  if (record.contains("text")) return DataFormat::text;
  fail("data",
       "{}: expected a record with \"text\", \"instruction\" + \"output\" (alpaca) or \"messages\" (chat)",
       where);
}

std::vector<Piece> chat_pieces(const nlohmann::json& record, const DataOptions& options,
                               const std::string& where) {
  const auto& messages = record.at("messages");
  if (!messages.is_array() || messages.empty())
    fail("data", "{}: \"messages\" must be a non-empty list of {{\"role\", \"content\"}}", where);
  for (size_t i = 0; i < messages.size(); ++i) {
    const auto& m = messages[i];
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string() || !m.contains("content"))
      fail("data", "{}: message {} needs a string \"role\" and a \"content\"", where, i);
  }
  if (!options.render_chat)
    fail("data", "{}: chat records need the model's chat template, and it has none", where);
  std::vector<Piece> pieces;
  std::string done;  // the rendered text covered by pieces so far
  bool any_assistant = false;
  auto extend = [&](const std::string& text, bool learn) {
    if (text.compare(0, done.size(), done) != 0)
      fail("data",
           "{}: the chat template does not render the conversation incrementally, so assistant turns "
           "cannot be located",
           where);
    if (text.size() > done.size()) pieces.push_back({text.substr(done.size()), learn, false});
    done = text;
  };
  for (size_t i = 0; i < messages.size(); ++i) {
    if (messages[i]["role"] != "assistant") continue;
    any_assistant = true;
    const nlohmann::json before(messages.begin(), messages.begin() + static_cast<std::ptrdiff_t>(i));
    const nlohmann::json through(messages.begin(), messages.begin() + static_cast<std::ptrdiff_t>(i) + 1);
    extend(options.render_chat(before, true), false);
    extend(options.render_chat(through, false), true);
  }
  if (!any_assistant) fail("data", "{}: the conversation has no assistant message to learn from", where);
  extend(options.render_chat(messages, false), false);
  return pieces;
}

}  // namespace

DataFormat data_format_from_name(const std::string& name) {
  if (name == "auto") return DataFormat::automatic;
  if (name == "text") return DataFormat::text;
  if (name == "alpaca") return DataFormat::alpaca;
  if (name == "chat") return DataFormat::chat;
  fail("data", "unknown data format '{}' (expected auto, text, alpaca or chat)", name);
}

Example make_example(const nlohmann::json& record, const io::Tokenizer& tokenizer, const DataOptions& options,
                     const std::string& source, int64_t line) {
  const std::string where = fmt::format("{}:{}", source, line);
  if (!record.is_object()) fail("data", "{}: expected a JSON object, got {}", where, record.type_name());
  const DataFormat format = options.format == DataFormat::automatic ? detect(record, where) : options.format;
  std::vector<Piece> pieces;
  bool add_eos = true;
  try {
    switch (format) {
      case DataFormat::text:
        if (!record.contains("text")) fail("data", "{}: a text record needs \"text\"", where);
        pieces.push_back({string_field(record, "text", where), true, true});
        break;
      case DataFormat::alpaca: {
        if (!record.contains("instruction") || !record.contains("output"))
          fail("data", "{}: an alpaca record needs \"instruction\" and \"output\"", where);
        const std::string input = record.contains("input") ? string_field(record, "input", where) : "";
        const std::string instruction = string_field(record, "instruction", where);
        pieces.push_back({input.empty() ? fmt::format(kAlpacaWithoutInput, instruction)
                                        : fmt::format(kAlpacaWithInput, instruction, input),
                          false, true});
        pieces.push_back({string_field(record, "output", where), true, false});
        break;
      }
      case DataFormat::chat:
        if (!record.contains("messages")) fail("data", "{}: a chat record needs \"messages\"", where);
        pieces = chat_pieces(record, options, where);
        add_eos = false;  // the template closes each turn itself
        break;
      case DataFormat::automatic:
        break;
    }
  } catch (const nlohmann::json::exception& e) {
    fail("data", "{}: {}", where, e.what());
  }
  Example example;
  example.line = line;
  for (const Piece& piece : pieces) {
    const auto ids = tokenizer.encode(piece.text, piece.special_tokens).ids;
    example.ids.insert(example.ids.end(), ids.begin(), ids.end());
    example.learn.insert(example.learn.end(), ids.size(), piece.learn ? 1 : 0);
  }
  if (add_eos) {
    if (const auto eos = tokenizer.eos_id(); eos && (example.ids.empty() || example.ids.back() != *eos)) {
      example.ids.push_back(*eos);
      example.learn.push_back(1);
    }
  }
  if (!example.learn.empty()) example.learn[0] = 0;  // nothing predicts the first token
  if (static_cast<int64_t>(example.ids.size()) > options.max_length) {
    if (!options.truncate)
      fail("data", "{}: {} tokens exceed max_length {} (allow truncation or raise the limit)", where,
           example.ids.size(), options.max_length);
    example.ids.resize(static_cast<size_t>(options.max_length));
    example.learn.resize(static_cast<size_t>(options.max_length));
  }
  return example;
}

std::vector<Example> load_examples(const std::string& path, const io::Tokenizer& tokenizer,
                                   const DataOptions& options) {
  if (options.max_length < 2) fail("data", "max_length must be at least 2, got {}", options.max_length);
  std::ifstream in(path);
  if (!in) fail("data", "{}: cannot open the data file", path);
  std::vector<Example> examples;
  std::string text;
  int64_t line = 0;
  while (std::getline(in, text)) {
    ++line;
    if (text.find_first_not_of(" \t\r") == std::string::npos) continue;
    nlohmann::json record;
    try {
      record = nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception& e) {
      fail("data", "{}:{}: not valid JSON: {}", path, line, e.what());
    }
    examples.push_back(make_example(record, tokenizer, options, path, line));
  }
  if (examples.empty()) fail("data", "{}: no records", path);
  return examples;
}

std::vector<int64_t> shuffled_indices(int64_t n, uint64_t seed, uint64_t stream) {
  std::vector<int64_t> order(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) order[static_cast<size_t>(i)] = i;
  for (int64_t i = n - 1; i > 0; --i) {
    const auto u = philox_uniform4(seed, stream, static_cast<uint64_t>(i) / 4);
    const auto j = std::min<int64_t>(
        i, static_cast<int64_t>(u[static_cast<size_t>(i % 4)] * static_cast<double>(i + 1)));
    std::swap(order[static_cast<size_t>(i)], order[static_cast<size_t>(j)]);
  }
  return order;
}

void split_validation(std::vector<Example>& train, std::vector<Example>& validation, double fraction,
                      uint64_t seed) {
  if (!(fraction >= 0 && fraction < 1))
    fail("data", "the validation fraction must be in [0, 1), got {}", fraction);
  if (fraction == 0 || train.size() < 2) return;
  const int64_t n = static_cast<int64_t>(train.size());
  const int64_t held =
      std::clamp<int64_t>(static_cast<int64_t>(fraction * static_cast<double>(n) + 0.5), 1, n - 1);
  const auto order = shuffled_indices(n, seed, 0);
  std::vector<uint8_t> is_validation(static_cast<size_t>(n), 0);
  for (int64_t i = 0; i < held; ++i) is_validation[static_cast<size_t>(order[static_cast<size_t>(i)])] = 1;
  std::vector<Example> kept;
  for (int64_t i = 0; i < n; ++i)
    (is_validation[static_cast<size_t>(i)] ? validation : kept)
        .push_back(std::move(train[static_cast<size_t>(i)]));
  train = std::move(kept);
}

namespace {

Batch make_batch(const std::vector<const std::vector<int32_t>*>& ids,
                 const std::vector<const std::vector<uint8_t>*>& learn, int64_t width, int32_t pad_id) {
  const int64_t rows = static_cast<int64_t>(ids.size());
  std::vector<int32_t> id_values(static_cast<size_t>(rows * width), pad_id);
  std::vector<int32_t> targets(static_cast<size_t>(rows * width), kIgnoreIndex);
  int64_t counted = 0;
  for (int64_t r = 0; r < rows; ++r) {
    const auto& row = *ids[static_cast<size_t>(r)];
    const auto& flags = *learn[static_cast<size_t>(r)];
    const int64_t n = static_cast<int64_t>(row.size());
    for (int64_t t = 0; t < n; ++t)
      id_values[static_cast<size_t>(r * width + t)] = row[static_cast<size_t>(t)];
    for (int64_t t = 0; t + 1 < n; ++t)
      if (flags[static_cast<size_t>(t + 1)]) {
        targets[static_cast<size_t>(r * width + t)] = row[static_cast<size_t>(t + 1)];
        ++counted;
      }
  }
  return {Tensor::from_vector(id_values, {rows, width}), Tensor::from_vector(targets, {rows, width}),
          counted};
}

}  // namespace

std::vector<Batch> epoch_batches(const std::vector<Example>& examples, const BatchPlan& plan, int64_t epoch) {
  if (plan.batch_size < 1) fail("data", "batch size must be >= 1, got {}", plan.batch_size);
  const int64_t n = static_cast<int64_t>(examples.size());
  std::vector<int64_t> order(static_cast<size_t>(n));
  if (plan.shuffle) {
    order = shuffled_indices(n, plan.seed, static_cast<uint64_t>(epoch) + 1);
  } else {
    for (int64_t i = 0; i < n; ++i) order[static_cast<size_t>(i)] = i;
  }
  std::vector<Batch> batches;
  if (!plan.packing) {
    for (int64_t start = 0; start < n; start += plan.batch_size) {
      std::vector<const std::vector<int32_t>*> ids;
      std::vector<const std::vector<uint8_t>*> learn;
      int64_t width = 1;
      for (int64_t i = start; i < std::min(n, start + plan.batch_size); ++i) {
        const Example& e = examples[static_cast<size_t>(order[static_cast<size_t>(i)])];
        ids.push_back(&e.ids);
        learn.push_back(&e.learn);
        width = std::max<int64_t>(width, static_cast<int64_t>(e.ids.size()));
      }
      batches.push_back(make_batch(ids, learn, width, plan.pad_id));
    }
    return batches;
  }
  // Packing: one token stream cut into rows of max_length.
  std::vector<std::vector<int32_t>> row_ids(1);
  std::vector<std::vector<uint8_t>> row_learn(1);
  for (int64_t i = 0; i < n; ++i) {
    const Example& e = examples[static_cast<size_t>(order[static_cast<size_t>(i)])];
    for (size_t t = 0; t < e.ids.size(); ++t) {
      if (static_cast<int64_t>(row_ids.back().size()) == plan.max_length) {
        row_ids.emplace_back();
        row_learn.emplace_back();
      }
      row_ids.back().push_back(e.ids[t]);
      row_learn.back().push_back(row_ids.back().size() == 1 ? 0 : e.learn[t]);
    }
  }
  const int64_t rows = static_cast<int64_t>(row_ids.size());
  for (int64_t start = 0; start < rows; start += plan.batch_size) {
    std::vector<const std::vector<int32_t>*> ids;
    std::vector<const std::vector<uint8_t>*> learn;
    int64_t width = 1;
    for (int64_t r = start; r < std::min(rows, start + plan.batch_size); ++r) {
      ids.push_back(&row_ids[static_cast<size_t>(r)]);
      learn.push_back(&row_learn[static_cast<size_t>(r)]);
      width = std::max<int64_t>(width, static_cast<int64_t>(row_ids[static_cast<size_t>(r)].size()));
    }
    batches.push_back(make_batch(ids, learn, width, plan.pad_id));
  }
  return batches;
}

}  // namespace wick::train
