// LoRA adapters for the decoder's projections with PEFT's semantics: for a targeted projection
// y = x·Wᵀ + scale·(dropout(x)·Aᵀ)·Bᵀ, A [r, in], B [out, r], scale = alpha/r (alpha/√r with rsLoRA). Saved
// and loaded as the adapter folders PEFT reads and writes (adapter_config.json + adapter_model.safetensors).
#pragma once

#include <array>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "wick/models/config.h"
#include "wick/tensor.h"

namespace wick::lora {

// The projections of a decoder layer, by their Hugging Face module names.
enum class Projection { q, k, v, o, gate, up, down };
inline constexpr std::array<Projection, 7> kProjections = {Projection::q,   Projection::k,    Projection::v,
                                                           Projection::o,   Projection::gate, Projection::up,
                                                           Projection::down};
std::string_view projection_name(Projection p);  // "q_proj", ..., "down_proj"
// The module path inside a layer, e.g. "self_attn.q_proj" or "mlp.down_proj".
std::string projection_path(Projection p);
// [out, in] of the projection's weight in a layer of `model`.
std::pair<int64_t, int64_t> projection_shape(const models::ModelConfig& model, Projection p);
// Parses target module names as PEFT's config holds them: a list of names ("q_proj", ...) or the string
// "all-linear". Unknown names are refused, naming the ones that exist.
std::vector<Projection> parse_target_modules(const std::vector<std::string>& names);

enum class InitMethod { kaiming_uniform, gaussian };

struct LoraConfig {
  int64_t rank = 8;
  double alpha = 8;
  double dropout = 0.0;
  bool use_rslora = false;
  std::vector<Projection> targets = {Projection::q, Projection::v};
  InitMethod init = InitMethod::kaiming_uniform;
  std::string base_model;  // base_model_name_or_path, for the reader's information

  double scale() const;
  bool targets_projection(Projection p) const;
  // Refuses rank < 1, non-finite alpha, dropout outside [0, 1), no targets.
  void validate() const;
};

struct LoraPair {
  Tensor a;  // [r, in]
  Tensor b;  // [out, r]
};

class LoraAdapter {
 public:
  LoraAdapter() = default;

  // A fresh adapter as PEFT initialises one: A kaiming-uniform (bound 1/√in) or normal (std 1/r), B zero;
  // seeded Philox draws, layer by layer, projection by projection.
  static LoraAdapter create(const models::ModelConfig& model, const LoraConfig& config, uint64_t seed,
                            Device device = Device::cpu(), DType dtype = DType::f32);
  // Reads a PEFT adapter folder, checked against `model`: a missing or extra tensor, a shape that does not
  // fit, or a PEFT option wick does not implement is one clear error naming the file and tensor.
  static LoraAdapter load(const std::string& folder, const models::ModelConfig& model,
                          Device device = Device::cpu(), DType dtype = DType::f32);
  // Writes a folder PEFT loads unchanged (staged and swapped in whole, never half-written).
  void save(const std::string& folder) const;
  // Writes the two files into an existing folder (each one atomically), e.g. inside a staged checkpoint.
  void save_into(const std::string& folder) const;

  bool defined() const { return flat_.defined(); }
  const LoraConfig& config() const { return config_; }
  int64_t layers() const { return static_cast<int64_t>(pairs_.size()); }
  // The pair of (layer, projection), or nullptr when the projection is not targeted.
  const LoraPair* find(int64_t layer, Projection p) const;
  // Every parameter in one dense buffer, layer by layer, projection by projection, A before B; the tensors
  // of find() are views of it (so one optimizer step updates them all).
  const Tensor& flat() const { return flat_; }
  DType dtype() const { return flat_.dtype(); }
  Device device() const { return flat_.device(); }
  // A copy on another device and/or dtype (e.g. the bf16 copy a bf16 model computes with).
  LoraAdapter to(Device device, DType dtype) const;
  // Copies the values of `other` (same layout) into this adapter's buffer, converting the dtype.
  void copy_from(const LoraAdapter& other);
  // Tensors by PEFT's names, e.g. "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight".
  std::vector<std::pair<std::string, Tensor>> named_tensors() const;

 private:
  static LoraAdapter allocate(const models::ModelConfig& model, const LoraConfig& config, Device device,
                              DType dtype);

  LoraConfig config_;
  models::ModelConfig model_;
  Tensor flat_;
  std::vector<std::array<std::optional<LoraPair>, 7>> pairs_;
};

// PEFT's tensor name for A (or B) of (layer, projection).
std::string peft_tensor_name(int64_t layer, Projection p, bool is_a);

}  // namespace wick::lora
