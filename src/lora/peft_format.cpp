// PEFT's adapter folder: adapter_config.json (the LoRA hyperparameters) and adapter_model.safetensors (A and
// B of every targeted module under PEFT's names). Options PEFT has and wick does not implement (DoRA,
// per-module ranks, trained biases, extra saved modules) are refused rather than silently ignored.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "wick/error.h"
#include "wick/io/atomic_file.h"
#include "wick/io/safetensors.h"
#include "wick/lora/adapter.h"

namespace wick::lora {
namespace fs = std::filesystem;
namespace {

constexpr const char* kConfigFile = "adapter_config.json";
constexpr const char* kWeightsFile = "adapter_model.safetensors";

nlohmann::json read_json(const fs::path& path) {
  std::ifstream in(path);
  if (!in) fail("lora", "{}: cannot open the adapter config", path.string());
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    fail("lora", "{}: not valid JSON: {}", path.string(), e.what());
  }
}

// The value is absent, null, false, or an empty list/object: PEFT's "option unused".
bool unused(const nlohmann::json& config, const char* key) {
  if (!config.contains(key)) return true;
  const auto& v = config[key];
  return v.is_null() || (v.is_boolean() && !v.get<bool>()) || ((v.is_object() || v.is_array()) && v.empty());
}

// PEFT reads a target_modules string (other than "all-linear") as a regular expression that must match a
// module's whole name, e.g. "model.layers.3.self_attn.q_proj". Returns the projections it matches in every
// one of the model's `layers`; one matched in some layers only cannot be expressed here and is refused.
std::vector<std::string> projections_matching(const std::string& pattern, int64_t layers) {
  std::regex regex;
  try {
    regex = std::regex(pattern, std::regex::ECMAScript);
  } catch (const std::regex_error& e) {
    fail("lora", "target_modules '{}' is not a valid regular expression: {}", pattern, e.what());
  }
  std::vector<std::string> names;
  for (Projection p : kProjections) {
    int64_t matched = 0;
    for (int64_t layer = 0; layer < layers; ++layer)
      matched += std::regex_match(fmt::format("model.layers.{}.{}", layer, projection_path(p)), regex);
    if (matched == layers) names.emplace_back(projection_name(p));
    if (matched != 0 && matched != layers)
      fail("lora",
           "target_modules '{}' selects {} in {} of {} layers; wick applies a projection's adapter to every "
           "layer",
           pattern, projection_name(p), matched, layers);
  }
  if (names.empty()) fail("lora", "target_modules '{}' matches none of the model's projections", pattern);
  return names;
}

LoraConfig parse_adapter_config(const nlohmann::json& j, const std::string& where, int64_t layers) {
  if (!j.is_object()) fail("lora", "{}: expected a JSON object", where);
  auto field = [&](const char* key) -> const nlohmann::json& {
    if (!j.contains(key)) fail("lora", "{}: missing the field '{}'", where, key);
    return j[key];
  };
  const auto& type = field("peft_type");
  if (!type.is_string() || type.get<std::string>() != "LORA")
    fail("lora", "{}: peft_type is {}, wick reads LORA adapters only", where, type.dump());
  for (const char* key : {"use_dora", "rank_pattern", "alpha_pattern", "modules_to_save",
                          "layers_to_transform", "layer_replication", "fan_in_fan_out", "lora_bias"})
    if (!unused(j, key)) fail("lora", "{}: '{}' = {} is not supported", where, key, j[key].dump());
  if (j.contains("bias") && j["bias"] != "none")
    fail("lora", "{}: bias = {} is not supported (only \"none\")", where, j["bias"].dump());
  LoraConfig c;
  try {
    c.rank = field("r").get<int64_t>();
    c.alpha = field("lora_alpha").get<double>();
    c.dropout = j.value("lora_dropout", 0.0);
    c.use_rslora = j.value("use_rslora", false);
    const auto& targets = field("target_modules");
    std::vector<std::string> names;
    if (targets.is_string() && targets.get<std::string>() != "all-linear") {
      names = projections_matching(targets.get<std::string>(), layers);
    } else if (targets.is_string()) {
      names.push_back(targets.get<std::string>());
    } else {
      names = targets.get<std::vector<std::string>>();
    }
    c.targets = parse_target_modules(names);
    if (j.contains("base_model_name_or_path") && j["base_model_name_or_path"].is_string())
      c.base_model = j["base_model_name_or_path"].get<std::string>();
    if (j.contains("init_lora_weights") && j["init_lora_weights"] == "gaussian")
      c.init = InitMethod::gaussian;
  } catch (const nlohmann::json::exception& e) {
    fail("lora", "{}: a field has the wrong type: {}", where, e.what());
  } catch (const Error& e) {
    fail("lora", "{}: {}", where, e.what());
  }
  c.validate();
  return c;
}

nlohmann::json adapter_config_json(const LoraConfig& c) {
  nlohmann::json targets = nlohmann::json::array();
  for (Projection p : c.targets) targets.push_back(std::string(projection_name(p)));
  nlohmann::json alpha = c.alpha;
  if (c.alpha == std::floor(c.alpha) && std::abs(c.alpha) < 1e15) alpha = static_cast<int64_t>(c.alpha);
  return {{"peft_type", "LORA"},
          {"task_type", "CAUSAL_LM"},
          {"base_model_name_or_path", c.base_model.empty() ? nlohmann::json() : nlohmann::json(c.base_model)},
          {"r", c.rank},
          {"lora_alpha", alpha},
          {"lora_dropout", c.dropout},
          {"target_modules", targets},
          {"use_rslora", c.use_rslora},
          {"use_dora", false},
          {"bias", "none"},
          {"fan_in_fan_out", false},
          {"init_lora_weights",
           c.init == InitMethod::gaussian ? nlohmann::json("gaussian") : nlohmann::json(true)},
          {"inference_mode", true},
          {"modules_to_save", nullptr},
          {"layers_to_transform", nullptr},
          {"layers_pattern", nullptr},
          {"rank_pattern", nlohmann::json::object()},
          {"alpha_pattern", nlohmann::json::object()},
          {"revision", nullptr}};
}

}  // namespace

LoraAdapter LoraAdapter::load(const std::string& folder, const models::ModelConfig& model, Device device,
                              DType dtype) {
  const fs::path dir(folder);
  if (!fs::is_directory(dir))
    fail("lora", "{}: not an adapter folder (expected {} and {})", folder, kConfigFile, kWeightsFile);
  const fs::path config_path = dir / kConfigFile, weights_path = dir / kWeightsFile;
  if (!fs::exists(config_path)) fail("lora", "{}: missing {}", folder, kConfigFile);
  if (!fs::exists(weights_path)) {
    if (fs::exists(dir / "adapter_model.bin"))
      fail("lora", "{}: only a pickled adapter_model.bin is there; wick reads {} (PEFT writes it by default)",
           folder, kWeightsFile);
    fail("lora", "{}: missing {}", folder, kWeightsFile);
  }
  const LoraConfig config =
      parse_adapter_config(read_json(config_path), config_path.string(), model.num_hidden_layers);
  LoraAdapter adapter = allocate(model, config, device, dtype);
  const io::SafetensorsFile file = io::SafetensorsFile::open(weights_path);
  std::set<std::string> expected;
  for (const auto& [name, tensor] : adapter.named_tensors()) {
    expected.insert(name);
    if (!file.contains(name))
      fail("lora", "{}: tensor '{}' is missing (the config targets {} with rank {})", weights_path.string(),
           name, name.substr(0, name.find(".lora_")), config.rank);
    const io::TensorInfo& info = file.info(name);
    if (info.shape != tensor.shape())
      fail("lora",
           "{}: tensor '{}' has shape {}, but this model needs {} (an adapter for a different base model or "
           "rank?)",
           weights_path.string(), name, shape_str(info.shape), shape_str(tensor.shape()));
    if (!info.dtype || !is_floating(*info.dtype))
      fail("lora", "{}: tensor '{}' has dtype {}, expected a float dtype", weights_path.string(), name,
           info.format_dtype);
    tensor.copy_(file.load(name));
  }
  for (const std::string& name : file.names())
    if (!expected.count(name))
      fail("lora", "{}: tensor '{}' does not belong to this model's LoRA layout ({} layers, targets from {})",
           weights_path.string(), name, model.num_hidden_layers, config_path.string());
  return adapter;
}

void LoraAdapter::save_into(const std::string& folder) const {
  if (!defined()) fail("lora", "{}: cannot save an empty adapter", folder);
  std::map<std::string, Tensor> tensors;
  for (auto& [name, tensor] : named_tensors()) tensors.emplace(name, tensor);
  io::save_safetensors(fs::path(folder) / kWeightsFile, tensors, {{"format", "pt"}});
  io::write_file_atomic(fs::path(folder) / kConfigFile, adapter_config_json(config_).dump(2) + "\n");
}

void LoraAdapter::save(const std::string& folder) const {
  if (!defined()) fail("lora", "{}: cannot save an empty adapter", folder);
  io::StagedFolder staged(folder);
  save_into(staged.path().string());
  staged.commit();
}

}  // namespace wick::lora
