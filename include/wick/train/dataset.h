// Training data: JSONL records in one of three formats, tokenized into examples that mark which tokens the
// loss learns, and the batches built from them.
//   {"text": ...}                                  loss on every token
//   {"instruction": ..., "input": ..., "output": ...} (alpaca) loss on the output only
//   {"messages": [{"role": ..., "content": ...}, ...]} (chat, through the model's chat template) loss on the
//                                                  assistant turns only
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "wick/io/tokenizer.h"
#include "wick/train/forward_backward.h"

namespace wick::train {

enum class DataFormat { automatic, text, alpaca, chat };
DataFormat data_format_from_name(const std::string& name);  // auto, text, alpaca, chat

struct Example {
  std::vector<int32_t> ids;
  std::vector<uint8_t> learn;  // learn[t]: the loss includes predicting ids[t] (never at t = 0)
  int64_t line = 0;            // where it came from, for messages
};

struct DataOptions {
  DataFormat format = DataFormat::automatic;
  int64_t max_length = 1024;
  bool truncate = true;  // longer examples are cut to max_length (else refused with their line number)
  // Renders a conversation with the model's chat template (needed for chat records).
  std::function<std::string(const nlohmann::json& messages, bool add_generation_prompt)> render_chat;
};

// Reads and tokenizes every record; a malformed line, an unknown shape of record, or (with truncate off) a
// record over max_length is one error naming the file and line. Text and alpaca records end with the EOS
// token, so the model learns to stop.
std::vector<Example> load_examples(const std::string& path, const io::Tokenizer& tokenizer,
                                   const DataOptions& options);
// The same for records already in memory (`source` names them in messages).
Example make_example(const nlohmann::json& record, const io::Tokenizer& tokenizer, const DataOptions& options,
                     const std::string& source, int64_t line);

// Splits off a validation set: `fraction` of the examples, chosen by a seeded shuffle (at least one when
// fraction > 0 and there are two or more examples).
void split_validation(std::vector<Example>& train, std::vector<Example>& validation, double fraction,
                      uint64_t seed);

// A seeded permutation of 0..n-1, the same on every machine (Philox draws, Fisher–Yates).
std::vector<int64_t> shuffled_indices(int64_t n, uint64_t seed, uint64_t stream);

// The micro-batches of one epoch, in order. Padding: `batch_size` examples per batch, right-padded to the
// longest (padding learns nothing). Packing: the epoch's examples concatenated and cut into rows of
// max_length (documents may then attend to the ones before them in a row, as in plain causal-LM packing).
// The number of batches depends only on the data and the plan, never on the epoch; a batch whose examples
// have nothing to learn (all prompt after truncation) has counted == 0.
struct BatchPlan {
  int64_t batch_size = 4;
  int64_t max_length = 1024;
  bool packing = false;
  bool shuffle = true;
  uint64_t seed = 0;
  int32_t pad_id = 0;
};
std::vector<Batch> epoch_batches(const std::vector<Example>& examples, const BatchPlan& plan, int64_t epoch);

}  // namespace wick::train
