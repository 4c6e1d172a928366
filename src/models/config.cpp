#include "wick/models/config.h"

#include <algorithm>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "wick/error.h"

namespace wick::models {
namespace {

using nlohmann::json;

int64_t required_int(const json& j, const char* key, const std::string& source) {
  if (!j.contains(key) || !j[key].is_number_integer())
    fail("config", "{}: '{}' must be an integer, got {}", source, key,
         j.contains(key) ? j[key].dump() : "nothing");
  const int64_t value = j[key].get<int64_t>();
  if (value <= 0) fail("config", "{}: '{}' must be positive, got {}", source, key, value);
  return value;
}

template <typename T>
T optional_value(const json& j, const char* key, T fallback, const std::string& source) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  try {
    return j[key].get<T>();
  } catch (const json::exception&) {
    fail("config", "{}: '{}' has the wrong type: {}", source, key, j[key].dump());
  }
}

std::vector<int64_t> id_list(const json& j, const char* key, const std::string& source) {
  if (!j.contains(key) || j[key].is_null()) return {};
  if (j[key].is_number_integer()) return {j[key].get<int64_t>()};
  if (j[key].is_array()) {
    std::vector<int64_t> ids;
    for (const auto& v : j[key]) {
      if (!v.is_number_integer())
        fail("config", "{}: '{}' must hold integers, got {}", source, key, j[key].dump());
      ids.push_back(v.get<int64_t>());
    }
    return ids;
  }
  fail("config", "{}: '{}' must be an integer or a list of integers, got {}", source, key, j[key].dump());
}

}  // namespace

ModelConfig parse_config(const json& j, const std::string& source) {
  if (!j.is_object()) fail("config", "{}: expected a JSON object", source);
  ModelConfig c;
  c.model_type = optional_value<std::string>(j, "model_type", "", source);
  if (c.model_type == "qwen2") {
    c.architecture = Architecture::qwen2;
  } else if (c.model_type == "llama") {
    c.architecture = Architecture::llama;
  } else if (c.model_type == "bert") {
    c.architecture = Architecture::bert;
  } else {
    fail("config", "{}: model_type '{}' is not supported (expected qwen2, llama or bert)", source,
         c.model_type);
  }
  c.vocab_size = required_int(j, "vocab_size", source);
  c.hidden_size = required_int(j, "hidden_size", source);
  c.intermediate_size = required_int(j, "intermediate_size", source);
  c.num_hidden_layers = required_int(j, "num_hidden_layers", source);
  c.num_attention_heads = required_int(j, "num_attention_heads", source);
  // The reference's defaults per architecture: Qwen2 32768, Llama 2048, BERT 512.
  const int64_t default_positions = c.architecture == Architecture::qwen2   ? 32768
                                    : c.architecture == Architecture::llama ? 2048
                                                                            : 512;
  c.max_position_embeddings =
      optional_value<int64_t>(j, "max_position_embeddings", default_positions, source);
  if (c.is_decoder()) {
    c.num_key_value_heads = optional_value<int64_t>(j, "num_key_value_heads", c.num_attention_heads, source);
    c.head_dim = optional_value<int64_t>(j, "head_dim", c.hidden_size / c.num_attention_heads, source);
    c.rms_norm_eps = optional_value<double>(j, "rms_norm_eps", 1e-6, source);
    c.rope_theta = optional_value<double>(j, "rope_theta", 10000.0, source);
    // Newer files nest RoPE settings: {"rope_parameters": {"rope_theta": ..., "rope_type": "default"}}.
    if (j.contains("rope_parameters") && j["rope_parameters"].is_object()) {
      const json& rope = j["rope_parameters"];
      c.rope_theta = optional_value<double>(rope, "rope_theta", c.rope_theta, source);
      const std::string type = optional_value<std::string>(rope, "rope_type", "default", source);
      if (type != "default")
        fail("config", "{}: rope_type '{}' is not supported (expected default)", source, type);
    }
    c.tie_word_embeddings = optional_value<bool>(j, "tie_word_embeddings", false, source);
    c.hidden_act = optional_value<std::string>(j, "hidden_act", "silu", source);
    if (c.architecture == Architecture::qwen2) {
      c.attention_bias = true;  // Qwen2 always has q/k/v biases and no o_proj bias
      if (optional_value<bool>(j, "use_sliding_window", false, source))
        fail("config", "{}: use_sliding_window is not supported", source);
    } else {
      c.attention_bias = optional_value<bool>(j, "attention_bias", false, source);
      c.o_proj_bias = c.attention_bias;
      c.mlp_bias = optional_value<bool>(j, "mlp_bias", false, source);
    }
    if (c.hidden_act != "silu")
      fail("config", "{}: hidden_act '{}' is not supported (expected silu)", source, c.hidden_act);
    if (j.contains("rope_scaling") && !j["rope_scaling"].is_null())
      fail("config", "{}: rope_scaling {} is not supported", source, j["rope_scaling"].dump());
    if (c.num_key_value_heads <= 0 || c.num_attention_heads % c.num_key_value_heads != 0)
      fail("config", "{}: num_attention_heads ({}) must be a multiple of num_key_value_heads ({})", source,
           c.num_attention_heads, c.num_key_value_heads);
    if (c.head_dim <= 0 || c.head_dim % 2 != 0)
      fail("config", "{}: head_dim must be even and positive, got {}", source, c.head_dim);
    c.eos_token_ids = id_list(j, "eos_token_id", source);
    const auto bos = id_list(j, "bos_token_id", source);
    if (!bos.empty()) c.bos_token_id = bos.front();
  } else {
    c.num_key_value_heads = c.num_attention_heads;
    if (c.hidden_size % c.num_attention_heads != 0)
      fail("config", "{}: hidden_size ({}) must be a multiple of num_attention_heads ({})", source,
           c.hidden_size, c.num_attention_heads);
    c.head_dim = c.hidden_size / c.num_attention_heads;
    c.layer_norm_eps = optional_value<double>(j, "layer_norm_eps", 1e-12, source);
    c.type_vocab_size = optional_value<int64_t>(j, "type_vocab_size", 2, source);
    c.hidden_act = optional_value<std::string>(j, "hidden_act", "gelu", source);
    if (c.hidden_act != "gelu")
      fail("config", "{}: hidden_act '{}' is not supported (expected gelu)", source, c.hidden_act);
    const std::string position =
        optional_value<std::string>(j, "position_embedding_type", "absolute", source);
    if (position != "absolute")
      fail("config", "{}: position_embedding_type '{}' is not supported", source, position);
    const auto pad = id_list(j, "pad_token_id", source);
    if (!pad.empty()) c.pad_token_id = pad.front();
  }
  return c;
}

namespace {

json read_json(const std::filesystem::path& file) {
  std::ifstream in(file);
  if (!in) fail("config", "cannot open {}", file.string());
  try {
    return json::parse(in);
  } catch (const json::exception& e) {
    fail("config", "{}: malformed JSON: {}", file.string(), e.what());
  }
}

}  // namespace

ModelConfig load_config(const std::string& path) {
  std::filesystem::path file = path;
  if (std::filesystem::is_directory(file) || file.extension() != ".json") file /= "config.json";
  ModelConfig config = parse_config(read_json(file), file.string());
  // generation_config.json beside it may name more end-of-sequence ids (chat models list their end-of-turn
  // token there); generation stops on all of them.
  const std::filesystem::path generation = file.parent_path() / "generation_config.json";
  if (config.is_decoder() && std::filesystem::exists(generation)) {
    const json g = read_json(generation);
    if (!g.is_object()) fail("config", "{}: expected a JSON object", generation.string());
    for (int64_t id : id_list(g, "eos_token_id", generation.string()))
      if (std::find(config.eos_token_ids.begin(), config.eos_token_ids.end(), id) ==
          config.eos_token_ids.end())
        config.eos_token_ids.push_back(id);
  }
  return config;
}

}  // namespace wick::models
