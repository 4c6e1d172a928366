// A model's config.json: every field the forward passes need, with the reference implementation's defaults.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace wick::models {

enum class Architecture { qwen2, llama, bert };

struct ModelConfig {
  Architecture architecture = Architecture::llama;
  std::string model_type;  // as written in the file
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;  // decoders: grouped KV heads (defaults to num_attention_heads)
  int64_t head_dim = 0;             // defaults to hidden_size / num_attention_heads
  int64_t max_position_embeddings = 0;
  // Decoders.
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  bool tie_word_embeddings = false;
  bool attention_bias = false;  // bias on q/k/v (qwen2 always; llama's attention_bias also covers o_proj)
  bool o_proj_bias = false;
  bool mlp_bias = false;
  std::string hidden_act = "silu";
  std::vector<int64_t> eos_token_ids;
  std::optional<int64_t> bos_token_id;
  // BERT.
  double layer_norm_eps = 1e-12;
  int64_t type_vocab_size = 2;
  std::optional<int64_t> pad_token_id;

  bool is_decoder() const { return architecture != Architecture::bert; }
};

// Parses config.json from a file or a model directory, adding the end-of-sequence ids that a
// generation_config.json beside it names. Unknown architectures, unsupported options (rope
// scaling, sliding windows, non-SiLU decoder activations) and inconsistent sizes are refused with a clear
// error.
ModelConfig load_config(const std::string& path);
ModelConfig parse_config(const nlohmann::json& json, const std::string& source);

}  // namespace wick::models
