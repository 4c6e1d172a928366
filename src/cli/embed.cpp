// `wick embed MODEL`: sentence embeddings of text lines (a file or stdin) with a BERT-family model, written
// as JSON lines or a .npy matrix. Lines are tokenized with the model's tokenizer, truncated to its max
// length, batched with right padding, pooled as the model's sentence-transformers config says (mean unless
// told; other modes are refused) and L2-normalised where its module list has a Normalize step.
#include <fmt/core.h>
#include <fmt/os.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/progress.h"
#include "wick/error.h"
#include "wick/io/tokenizer.h"
#include "wick/models/bert.h"

namespace wick::cli {
namespace {

struct EmbedOptions {
  std::string model, input = "-", output = "-", format = "jsonl", device = "cpu", dtype = "f32", pooling;
  int64_t batch_size = 64, max_length = 0;
  bool no_normalize = false;
};

std::vector<std::string> read_lines(const std::string& path) {
  std::ifstream file;
  if (path != "-") {
    file.open(path);
    if (!file) fail("embed", "cannot open input {}", path);
  }
  std::istream& in = path == "-" ? std::cin : file;
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(line);
  }
  return lines;
}

nlohmann::json read_json(const std::filesystem::path& file) {
  std::ifstream in(file);
  if (!in) fail("embed", "cannot open {}", file.string());
  const auto j = nlohmann::json::parse(in, nullptr, false);
  if (!j.is_object() && !j.is_array()) fail("embed", "{}: malformed JSON", file.string());
  return j;
}

// sentence-transformers' settings beside the model, where present: max_seq_length, the pooling mode (when
// not given) and whether a Normalize module ends the pipeline.
struct SentenceConfig {
  int64_t max_length = 0;
  std::string pooling;
  bool normalize = true;  // without modules.json, as most embedding models ship
};

// `pooling_given`: the user chose the pooling, so the model's own mode is not read.
SentenceConfig read_sentence_config(const std::filesystem::path& dir, bool pooling_given) {
  SentenceConfig c;
  if (const auto file = dir / "sentence_bert_config.json"; std::filesystem::exists(file)) {
    const auto j = read_json(file);
    if (j.is_object() && j.contains("max_seq_length") && j["max_seq_length"].is_number_integer())
      c.max_length = j["max_seq_length"].get<int64_t>();
  }
  if (const auto file = dir / "1_Pooling" / "config.json"; !pooling_given && std::filesystem::exists(file)) {
    const auto j = read_json(file);
    std::vector<std::string> modes;
    if (j.is_object())
      for (const auto& [key, value] : j.items())
        if (key.rfind("pooling_mode_", 0) == 0 && value.is_boolean() && value.get<bool>())
          modes.push_back(key.substr(13));
    if (modes == std::vector<std::string>{"cls_token"}) {
      c.pooling = "cls";
    } else if (modes == std::vector<std::string>{"mean_tokens"}) {
      c.pooling = "mean";
    } else if (!modes.empty()) {
      fail("embed", "{}: pooling mode {} is not supported (wick pools by mean or cls; --pooling overrides)",
           file.string(), fmt::join(modes, " + "));
    }
  }
  if (const auto file = dir / "modules.json"; std::filesystem::exists(file)) {
    const auto j = read_json(file);
    c.normalize = false;
    if (j.is_array())
      for (const auto& module : j)
        if (module.is_object() && module.value("type", "").find("Normalize") != std::string::npos)
          c.normalize = true;
  }
  return c;
}

void write_npy(const std::string& path, const std::vector<float>& values, int64_t rows, int64_t cols) {
  std::string header =
      fmt::format("{{'descr': '<f4', 'fortran_order': False, 'shape': ({}, {}), }}", rows, cols);
  header.append(64 - (10 + header.size() + 1) % 64, ' ');
  header.push_back('\n');
  const auto temporary = path + ".tmp";
  {
    std::ofstream out(temporary, std::ios::binary);
    if (!out) fail("embed", "cannot write {}", temporary);
    const uint16_t length = static_cast<uint16_t>(header.size());
    out.write("\x93NUMPY\x01\x00", 8);
    out.write(reinterpret_cast<const char*>(&length), 2);
    out.write(header.data(), static_cast<std::streamsize>(header.size()));
    out.write(reinterpret_cast<const char*>(values.data()), static_cast<std::streamsize>(values.size() * 4));
    if (!out) fail("embed", "writing {} failed", temporary);
  }
  std::filesystem::rename(temporary, path);
}

void run_embed(const EmbedOptions& o) {
  if (o.format != "jsonl" && o.format != "npy")
    fail("embed", "--format must be jsonl or npy, got '{}'", o.format);
  if (o.format == "npy" && o.output == "-") fail("embed", "--format npy needs --output FILE");
  if (o.batch_size < 1) fail("embed", "--batch-size must be >= 1, got {}", o.batch_size);
  if (o.max_length < 0 || o.max_length == 1)
    fail("embed", "--max-length must be >= 2 (room for [CLS] and [SEP]), got {}", o.max_length);
  const std::filesystem::path dir = o.model;
  const auto config = models::load_config(o.model);
  const auto tokenizer = io::Tokenizer::from_file(dir);
  const SentenceConfig sentence = read_sentence_config(dir, !o.pooling.empty());
  int64_t max_length = o.max_length > 0 ? o.max_length : sentence.max_length;
  std::string pooling = o.pooling.empty() ? sentence.pooling : o.pooling;
  const bool normalize = sentence.normalize && !o.no_normalize;
  if (max_length == 0) max_length = tokenizer.model_max_length().value_or(config.max_position_embeddings);
  max_length = std::min(max_length, config.max_position_embeddings);
  if (pooling.empty()) pooling = "mean";
  if (pooling != "mean" && pooling != "cls")
    fail("embed", "--pooling must be mean or cls, got '{}'", pooling);
  const models::BertEncoder model(config, models::CheckpointSource::open(o.model), device_from_name(o.device),
                                  dtype_from_name(o.dtype));
  const std::vector<std::string> lines = read_lines(o.input);
  const int64_t width = config.hidden_size, count = static_cast<int64_t>(lines.size());
  const int32_t pad = tokenizer.pad_id().value_or(0);
  std::vector<float> all;
  std::FILE* text_out =
      o.format == "jsonl" ? (o.output == "-" ? stdout : std::fopen(o.output.c_str(), "w")) : nullptr;
  if (o.format == "jsonl" && !text_out) fail("embed", "cannot write {}", o.output);
  ProgressBar progress("embed", count);
  for (int64_t start = 0; start < count; start += o.batch_size) {
    const int64_t n = std::min(o.batch_size, count - start);
    std::vector<std::vector<int32_t>> ids, types;
    int64_t longest = 1;
    for (int64_t i = 0; i < n; ++i) {
      io::Encoding e = tokenizer.encode(lines[start + i]);
      if (static_cast<int64_t>(e.ids.size()) > max_length) {  // keep the closing special token
        e.ids[max_length - 1] = e.ids.back();
        e.type_ids[max_length - 1] = e.type_ids.back();
        e.ids.resize(max_length);
        e.type_ids.resize(max_length);
      }
      longest = std::max<int64_t>(longest, static_cast<int64_t>(e.ids.size()));
      ids.push_back(std::move(e.ids));
      types.push_back(std::move(e.type_ids));
    }
    std::vector<int32_t> flat_ids(n * longest, pad), flat_types(n * longest, 0), mask(n * longest, 0);
    for (int64_t i = 0; i < n; ++i)
      for (size_t j = 0; j < ids[i].size(); ++j) {
        flat_ids[i * longest + j] = ids[i][j];
        flat_types[i * longest + j] = types[i][j];
        mask[i * longest + j] = 1;
      }
    const Tensor embeddings =
        model.embed(Tensor::from_vector(flat_ids, {n, longest}), Tensor::from_vector(mask, {n, longest}),
                    Tensor::from_vector(flat_types, {n, longest}),
                    pooling == "cls" ? models::Pooling::cls : models::Pooling::mean, normalize);
    const std::vector<float> values = embeddings.to_vector<float>();
    if (text_out) {
      for (int64_t i = 0; i < n; ++i)
        fmt::print(text_out, "{{\"index\": {}, \"embedding\": [{}]}}\n", start + i,
                   fmt::join(values.begin() + i * width, values.begin() + (i + 1) * width, ", "));
    } else {
      all.insert(all.end(), values.begin(), values.end());
    }
    progress.update(start + n);
  }
  progress.finish();
  if (text_out && text_out != stdout) std::fclose(text_out);
  if (o.format == "npy") write_npy(o.output, all, count, width);
}

}  // namespace

void add_embed_command(CLI::App& app) {
  auto* command = app.add_subcommand("embed", "Sentence embeddings of text lines with a BERT-family model");
  static EmbedOptions o;
  command->add_option("model", o.model, "model directory (config.json, model.safetensors, tokenizer.json)")
      ->required();
  command->add_option("-i,--input", o.input, "text file, one input per line ('-': stdin)")
      ->capture_default_str();
  command->add_option("-o,--output", o.output, "output file ('-': stdout)")->capture_default_str();
  command->add_option("--format", o.format, "jsonl or npy")->capture_default_str();
  command->add_option("--device", o.device, "cpu or cuda[:N]")->capture_default_str();
  command->add_option("--dtype", o.dtype, "f32, bf16 or f16 (compute and weights)")->capture_default_str();
  command->add_option("--batch-size", o.batch_size, "lines per forward pass")->capture_default_str();
  command->add_option("--max-length", o.max_length,
                      "tokens per line, [CLS] and [SEP] included (default: the "
                      "model's max_seq_length)");
  command->add_option("--pooling", o.pooling, "mean or cls (default: the model's pooling config, else mean)");
  command->add_flag(
      "--no-normalize", o.no_normalize,
      "skip the L2 normalisation (done when the model's modules.json ends in Normalize, or has no "
      "modules.json)");
  command->callback([] { run_embed(o); });
}

}  // namespace wick::cli
