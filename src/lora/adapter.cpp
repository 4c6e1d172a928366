// The adapter's layout and initialisation. All parameters live in one dense buffer so that an optimizer step,
// a norm or a device copy is one operation over the whole adapter.
#include "wick/lora/adapter.h"

#include <cmath>

#include <fmt/format.h>

#include "wick/error.h"
#include "wick/random.h"

namespace wick::lora {

std::string_view projection_name(Projection p) {
  switch (p) {
    case Projection::q:
      return "q_proj";
    case Projection::k:
      return "k_proj";
    case Projection::v:
      return "v_proj";
    case Projection::o:
      return "o_proj";
    case Projection::gate:
      return "gate_proj";
    case Projection::up:
      return "up_proj";
    case Projection::down:
      return "down_proj";
  }
  return "?";
}

std::string projection_path(Projection p) {
  const bool attention = p == Projection::q || p == Projection::k || p == Projection::v || p == Projection::o;
  return std::string(attention ? "self_attn." : "mlp.") + std::string(projection_name(p));
}

std::pair<int64_t, int64_t> projection_shape(const models::ModelConfig& m, Projection p) {
  const int64_t hidden = m.hidden_size, q_out = m.num_attention_heads * m.head_dim,
                kv_out = m.num_key_value_heads * m.head_dim, inter = m.intermediate_size;
  switch (p) {
    case Projection::q:
      return {q_out, hidden};
    case Projection::k:
    case Projection::v:
      return {kv_out, hidden};
    case Projection::o:
      return {hidden, q_out};
    case Projection::gate:
    case Projection::up:
      return {inter, hidden};
    case Projection::down:
      return {hidden, inter};
  }
  return {0, 0};
}

std::vector<Projection> parse_target_modules(const std::vector<std::string>& names) {
  if (names.size() == 1 && names[0] == "all-linear")
    return std::vector<Projection>(kProjections.begin(), kProjections.end());
  std::vector<Projection> targets;
  for (const std::string& name : names) {
    // PEFT matches a target by the end of the module path, so "self_attn.q_proj" names q_proj too.
    std::optional<Projection> found;
    for (Projection p : kProjections) {
      const std::string path = projection_path(p);
      if (name == projection_name(p) || name == path ||
          (name.size() > path.size() && name.ends_with("." + path)))
        found = p;
    }
    if (!found) {
      std::string known;
      for (Projection p : kProjections)
        known += (known.empty() ? "" : ", ") + std::string(projection_name(p));
      fail("lora", "target module '{}' does not exist in the decoder (expected some of: {}, or all-linear)",
           name, known);
    }
    bool seen = false;
    for (Projection t : targets) seen = seen || t == *found;
    if (!seen) targets.push_back(*found);
  }
  return targets;
}

double LoraConfig::scale() const {
  return use_rslora ? alpha / std::sqrt(static_cast<double>(rank)) : alpha / static_cast<double>(rank);
}

bool LoraConfig::targets_projection(Projection p) const {
  for (Projection t : targets)
    if (t == p) return true;
  return false;
}

void LoraConfig::validate() const {
  if (rank < 1) fail("lora", "rank must be >= 1, got {}", rank);
  if (!std::isfinite(alpha)) fail("lora", "alpha must be finite, got {}", alpha);
  if (!(dropout >= 0 && dropout < 1)) fail("lora", "dropout must be in [0, 1), got {}", dropout);
  if (targets.empty())
    fail("lora", "no target modules: name at least one projection (q_proj, ..., down_proj)");
}

std::string peft_tensor_name(int64_t layer, Projection p, bool is_a) {
  return fmt::format("base_model.model.model.layers.{}.{}.lora_{}.weight", layer, projection_path(p),
                     is_a ? "A" : "B");
}

LoraAdapter LoraAdapter::allocate(const models::ModelConfig& model, const LoraConfig& config, Device device,
                                  DType dtype) {
  config.validate();
  if (!model.is_decoder()) fail("lora", "LoRA adapters apply to decoders; '{}' is not one", model.model_type);
  if (!is_floating(dtype)) fail("lora", "adapter weights need a float dtype, got {}", dtype_name(dtype));
  LoraAdapter adapter;
  adapter.config_ = config;
  adapter.model_ = model;
  int64_t total = 0;
  for (int64_t layer = 0; layer < model.num_hidden_layers; ++layer)
    for (Projection p : kProjections)
      if (config.targets_projection(p)) {
        const auto [out, in] = projection_shape(model, p);
        total += config.rank * (in + out);
      }
  adapter.flat_ = Tensor::zeros({total}, dtype, device);
  adapter.pairs_.resize(static_cast<size_t>(model.num_hidden_layers));
  int64_t offset = 0;
  for (int64_t layer = 0; layer < model.num_hidden_layers; ++layer) {
    for (Projection p : kProjections) {
      if (!config.targets_projection(p)) continue;
      const auto [out, in] = projection_shape(model, p);
      LoraPair pair;
      pair.a = adapter.flat_.narrow(0, offset, config.rank * in).view({config.rank, in});
      offset += config.rank * in;
      pair.b = adapter.flat_.narrow(0, offset, out * config.rank).view({out, config.rank});
      offset += out * config.rank;
      adapter.pairs_[static_cast<size_t>(layer)][static_cast<size_t>(p)] = pair;
    }
  }
  return adapter;
}

LoraAdapter LoraAdapter::create(const models::ModelConfig& model, const LoraConfig& config, uint64_t seed,
                                Device device, DType dtype) {
  LoraAdapter adapter = allocate(model, config, device, dtype);
  Generator gen(seed);
  for (auto& layer : adapter.pairs_) {
    for (auto& pair : layer) {
      if (!pair) continue;
      const int64_t in = pair->a.size(1);
      const Tensor a =
          config.init == InitMethod::kaiming_uniform
              ? rand_uniform(pair->a.shape(), gen, -1.0 / std::sqrt(static_cast<double>(in)),
                             1.0 / std::sqrt(static_cast<double>(in)), DType::f64)
              : rand_normal(pair->a.shape(), gen, 0.0, 1.0 / static_cast<double>(config.rank), DType::f64);
      pair->a.copy_(a);
    }
  }
  return adapter;
}

const LoraPair* LoraAdapter::find(int64_t layer, Projection p) const {
  if (layer < 0 || layer >= layers()) return nullptr;
  const auto& pair = pairs_[static_cast<size_t>(layer)][static_cast<size_t>(p)];
  return pair ? &*pair : nullptr;
}

LoraAdapter LoraAdapter::to(Device device, DType dtype) const {
  if (!defined()) fail("lora", "the adapter is empty");
  LoraAdapter copy = allocate(model_, config_, device, dtype);
  copy.flat_.copy_(flat_);
  return copy;
}

void LoraAdapter::copy_from(const LoraAdapter& other) {
  if (other.flat_.shape() != flat_.shape())
    fail("lora", "cannot copy an adapter of {} parameters into one of {}", other.flat_.numel(),
         flat_.numel());
  flat_.copy_(other.flat_);
}

std::vector<std::pair<std::string, Tensor>> LoraAdapter::named_tensors() const {
  std::vector<std::pair<std::string, Tensor>> named;
  for (int64_t layer = 0; layer < layers(); ++layer)
    for (Projection p : kProjections)
      if (const LoraPair* pair = find(layer, p)) {
        named.emplace_back(peft_tensor_name(layer, p, true), pair->a);
        named.emplace_back(peft_tensor_name(layer, p, false), pair->b);
      }
  return named;
}

}  // namespace wick::lora
