// `wick inspect PATH`: what a model directory (or a .safetensors file) holds — tensors, dtypes, shapes,
// parameter count, architecture — and the problems found: invalid files, tensors the config needs that are
// missing or mis-shaped, and tensors nothing uses.
#include <fmt/core.h>

#include <filesystem>
#include <map>
#include <set>

#include "cli/commands.h"
#include "wick/io/safetensors.h"
#include "wick/models/bert.h"
#include "wick/models/decoder.h"

namespace wick::cli {
namespace {

// A weight source that loads nothing: it records which tensors a model asks for and what is wrong with them.
class CheckingSource final : public models::WeightSource {
 public:
  explicit CheckingSource(const io::SafetensorsCheckpoint& checkpoint) : checkpoint_(checkpoint) {}
  bool contains(const std::string& name) const override { return checkpoint_.contains(name); }
  Tensor load(const std::string& name, const Shape& expected, Device, DType) const override {
    requested_.insert(name);
    if (!checkpoint_.contains(name)) {
      problems_.push_back(fmt::format("missing tensor '{}' (expected shape {})", name, shape_str(expected)));
    } else if (const auto& info = checkpoint_.info(name); !info.dtype || !is_floating(*info.dtype)) {
      problems_.push_back(fmt::format("tensor '{}' is stored as {}, expected a floating-point dtype", name,
                                      info.format_dtype));
    } else if (checkpoint_.info(name).shape != expected) {
      problems_.push_back(fmt::format("tensor '{}' has shape {} but the config needs {}", name,
                                      shape_str(checkpoint_.info(name).shape), shape_str(expected)));
    }
    return Tensor::empty({1});
  }
  std::string origin() const override { return checkpoint_.path().string(); }
  const std::set<std::string>& requested() const { return requested_; }
  const std::vector<std::string>& problems() const { return problems_; }

 private:
  const io::SafetensorsCheckpoint& checkpoint_;
  mutable std::set<std::string> requested_;
  mutable std::vector<std::string> problems_;
};

int inspect(const std::string& path) {
  const auto checkpoint = io::SafetensorsCheckpoint::open(path);
  fmt::print("{}\n", checkpoint.path().string());
  int64_t parameters = 0;
  std::map<std::string, int64_t> per_dtype;
  for (const auto& name : checkpoint.names()) {
    const auto& info = checkpoint.info(name);
    fmt::print("  {:<60} {:>5} {}\n", name, info.format_dtype, shape_str(info.shape));
    parameters += shape_numel(info.shape);
    per_dtype[info.format_dtype] += shape_numel(info.shape);
  }
  fmt::print("{} tensors, {} parameters", checkpoint.names().size(), parameters);
  for (const auto& [dtype, count] : per_dtype) fmt::print(", {} {}", count, dtype);
  fmt::print("\n");

  std::filesystem::path dir = path;
  if (!std::filesystem::is_directory(dir)) dir = dir.parent_path();
  if (!std::filesystem::exists(dir / "config.json")) {
    fmt::print("no config.json beside the weights: architecture unknown\n");
    return 0;
  }
  const auto config = models::load_config(dir.string());
  fmt::print(
      "architecture: {} — hidden {}, layers {}, heads {} ({} KV), head_dim {}, intermediate {}, vocab {}{}\n",
      config.model_type, config.hidden_size, config.num_hidden_layers, config.num_attention_heads,
      config.num_key_value_heads, config.head_dim, config.intermediate_size, config.vocab_size,
      config.is_decoder() && config.tie_word_embeddings ? ", tied embeddings" : "");
  CheckingSource source(checkpoint);
  if (config.is_decoder()) {
    models::Decoder(config, source, Device::cpu(), DType::f32);
  } else {
    models::BertEncoder(config, source, Device::cpu(), DType::f32);
  }
  std::vector<std::string> problems = source.problems();
  for (const auto& name : checkpoint.names()) {
    const bool known_extra =
        name.find("pooler.") != std::string::npos || name.find("position_ids") != std::string::npos;
    if (!source.requested().count(name) && !known_extra)
      problems.push_back(fmt::format("unused tensor '{}'", name));
  }
  if (problems.empty()) {
    fmt::print("problems: none\n");
    return 0;
  }
  fmt::print("problems ({}):\n", problems.size());
  for (const auto& p : problems) fmt::print("  - {}\n", p);
  return 2;
}

}  // namespace

void add_inspect_command(CLI::App& app) {
  auto* command =
      app.add_subcommand("inspect", "List a model's tensors and check them against its config.json");
  static std::string path;
  command->add_option("path", path, "model directory, .safetensors file or model.safetensors.index.json")
      ->required();
  command->callback([] {
    const int status = inspect(path);
    if (status != 0) throw CLI::RuntimeError(status);
  });
}

}  // namespace wick::cli
