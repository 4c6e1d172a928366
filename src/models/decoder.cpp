// The decoder forward pass, written with the device-agnostic ops, so the same code runs on the CPU and on
// CUDA. Layer i: h += o_proj(attention(rope(q), rope(k), v)) on rms_norm(h); h += down(silu(gate(x))·up(x))
// on rms_norm(h). Positions continue from the KV cache's length, and causal masking lets each new token see
// the cached ones and the earlier new ones.
#include "wick/models/decoder.h"

#include <fmt/format.h>

#include <algorithm>

#include "wick/error.h"
#include "wick/ops.h"

namespace wick::models {

KvCache::KvCache(const ModelConfig& config, int64_t batch, int64_t capacity, DType dtype, Device device)
    : batch_(batch), capacity_(capacity) {
  if (!config.is_decoder()) fail("kv_cache", "model_type '{}' has no KV cache", config.model_type);
  if (batch <= 0 || capacity <= 0)
    fail("kv_cache", "batch and capacity must be positive, got {} and {}", batch, capacity);
  for (int64_t i = 0; i < config.num_hidden_layers; ++i) {
    keys_.push_back(
        Tensor::empty({batch, config.num_key_value_heads, capacity, config.head_dim}, dtype, device));
    values_.push_back(
        Tensor::empty({batch, config.num_key_value_heads, capacity, config.head_dim}, dtype, device));
  }
}

std::pair<Tensor, Tensor> KvCache::append(int64_t layer, const Tensor& k, const Tensor& v) {
  const int64_t tokens = k.size(2);
  if (length_ + tokens > capacity_)
    fail("kv_cache", "{} cached + {} new positions exceed the capacity of {}", length_, tokens, capacity_);
  if (k.size(0) != batch_) fail("kv_cache", "batch {} does not match the cache's {}", k.size(0), batch_);
  keys_[layer].narrow(2, length_, tokens).copy_(k);
  values_[layer].narrow(2, length_, tokens).copy_(v);
  return {keys_[layer].narrow(2, 0, length_ + tokens), values_[layer].narrow(2, 0, length_ + tokens)};
}

void KvCache::advance(int64_t tokens) {
  length_ += tokens;
  for (int64_t& row : row_lengths_) row += tokens;
}

void KvCache::copy_row(int64_t row, const KvCache& other) {
  if (row < 0 || row >= batch_) fail("kv_cache", "row {} is outside the cache's batch of {}", row, batch_);
  if (other.batch_ != 1 || other.ragged()) fail("kv_cache", "copy_row takes a single-row, uniform cache");
  if (other.keys_.size() != keys_.size()) fail("kv_cache", "the caches belong to different models");
  if (other.length_ > capacity_)
    fail("kv_cache", "{} positions exceed the capacity of {}", other.length_, capacity_);
  if (row_lengths_.empty()) row_lengths_.assign(static_cast<size_t>(batch_), 0);
  for (size_t layer = 0; layer < keys_.size(); ++layer) {
    keys_[layer]
        .narrow(0, row, 1)
        .narrow(2, 0, other.length_)
        .copy_(other.keys_[layer].narrow(2, 0, other.length_));
    values_[layer]
        .narrow(0, row, 1)
        .narrow(2, 0, other.length_)
        .copy_(other.values_[layer].narrow(2, 0, other.length_));
  }
  row_lengths_[static_cast<size_t>(row)] = other.length_;
  length_ = *std::max_element(row_lengths_.begin(), row_lengths_.end());
}

std::pair<Tensor, Tensor> KvCache::append_ragged(int64_t layer, const Tensor& k, const Tensor& v) {
  if (k.size(2) != 1) fail("kv_cache", "a ragged cache takes one token per row, got {}", k.size(2));
  if (k.size(0) != batch_) fail("kv_cache", "batch {} does not match the cache's {}", k.size(0), batch_);
  for (int64_t b = 0; b < batch_; ++b) {
    const int64_t at = row_lengths_[static_cast<size_t>(b)];
    if (at + 1 > capacity_)
      fail("kv_cache", "row {}: {} positions exceed the capacity of {}", b, at + 1, capacity_);
    keys_[layer].narrow(0, b, 1).narrow(2, at, 1).copy_(k.narrow(0, b, 1));
    values_[layer].narrow(0, b, 1).narrow(2, at, 1).copy_(v.narrow(0, b, 1));
  }
  const int64_t longest = *std::max_element(row_lengths_.begin(), row_lengths_.end()) + 1;
  return {keys_[layer].narrow(2, 0, longest), values_[layer].narrow(2, 0, longest)};
}

Decoder::Decoder(const ModelConfig& config, const WeightSource& weights, Device device, DType dtype)
    : config_(config), device_(device), dtype_(dtype) {
  if (!config.is_decoder())
    fail("model", "{}: model_type '{}' is not a decoder", weights.origin(), config.model_type);
  const int64_t hidden = config.hidden_size, inter = config.intermediate_size;
  const int64_t q_out = config.num_attention_heads * config.head_dim;
  const int64_t kv_out = config.num_key_value_heads * config.head_dim;
  auto load = [&](const std::string& name, const Shape& shape) {
    return weights.load(name, shape, device, dtype);
  };
  auto maybe = [&](bool present, const std::string& name, const Shape& shape) {
    return present ? load(name, shape) : Tensor();
  };
  embed_tokens_ = load("model.embed_tokens.weight", {config.vocab_size, hidden});
  final_norm_ = load("model.norm.weight", {hidden});
  if (config.tie_word_embeddings) {
    lm_head_ = embed_tokens_;
  } else {
    lm_head_ = load("lm_head.weight", {config.vocab_size, hidden});
  }
  for (int64_t i = 0; i < config.num_hidden_layers; ++i) {
    const std::string p = fmt::format("model.layers.{}.", i);
    DecoderLayerWeights l;
    l.input_norm = load(p + "input_layernorm.weight", {hidden});
    l.post_attention_norm = load(p + "post_attention_layernorm.weight", {hidden});
    l.q = load(p + "self_attn.q_proj.weight", {q_out, hidden});
    l.k = load(p + "self_attn.k_proj.weight", {kv_out, hidden});
    l.v = load(p + "self_attn.v_proj.weight", {kv_out, hidden});
    l.o = load(p + "self_attn.o_proj.weight", {hidden, q_out});
    l.q_bias = maybe(config.attention_bias, p + "self_attn.q_proj.bias", {q_out});
    l.k_bias = maybe(config.attention_bias, p + "self_attn.k_proj.bias", {kv_out});
    l.v_bias = maybe(config.attention_bias, p + "self_attn.v_proj.bias", {kv_out});
    l.o_bias = maybe(config.o_proj_bias, p + "self_attn.o_proj.bias", {hidden});
    l.gate = load(p + "mlp.gate_proj.weight", {inter, hidden});
    l.up = load(p + "mlp.up_proj.weight", {inter, hidden});
    l.down = load(p + "mlp.down_proj.weight", {hidden, inter});
    l.gate_bias = maybe(config.mlp_bias, p + "mlp.gate_proj.bias", {inter});
    l.up_bias = maybe(config.mlp_bias, p + "mlp.up_proj.bias", {inter});
    l.down_bias = maybe(config.mlp_bias, p + "mlp.down_proj.bias", {hidden});
    pack_rows({&l.q, &l.k, &l.v}, l.qkv);
    pack_rows({&l.gate, &l.up}, l.gate_up);
    if (config.attention_bias) pack_rows({&l.q_bias, &l.k_bias, &l.v_bias}, l.qkv_bias);
    if (config.mlp_bias) pack_rows({&l.gate_bias, &l.up_bias}, l.gate_up_bias);
    layers_.push_back(std::move(l));
  }
}

std::pair<Tensor, Tensor> Decoder::projection(int64_t i, lora::Projection p) const {
  const DecoderLayerWeights& l = layer(i);
  switch (p) {
    case lora::Projection::q:
      return {l.q, l.q_bias};
    case lora::Projection::k:
      return {l.k, l.k_bias};
    case lora::Projection::v:
      return {l.v, l.v_bias};
    case lora::Projection::o:
      return {l.o, l.o_bias};
    case lora::Projection::gate:
      return {l.gate, l.gate_bias};
    case lora::Projection::up:
      return {l.up, l.up_bias};
    case lora::Projection::down:
      return {l.down, l.down_bias};
  }
  return {};
}

void Decoder::check_adapter(const lora::LoraAdapter& adapter, Device device, DType dtype) const {
  if (!adapter.defined()) fail("decoder", "the adapter is empty");
  if (adapter.layers() != config_.num_hidden_layers)
    fail("decoder", "the adapter has {} layers, the model {}: it belongs to another base model",
         adapter.layers(), config_.num_hidden_layers);
  for (int64_t i = 0; i < adapter.layers(); ++i)
    for (lora::Projection p : lora::kProjections)
      if (const lora::LoraPair* pair = adapter.find(i, p)) {
        const auto [out, in] = lora::projection_shape(config_, p);
        if (pair->a.size(1) != in || pair->b.size(0) != out)
          fail("decoder",
               "the adapter's {} of layer {} is [{} x r] · [r x {}], the model's projection is [{} x {}]",
               lora::projection_name(p), i, pair->b.size(0), pair->a.size(1), out, in);
      }
  if (adapter.device() != device || adapter.dtype() != dtype)
    fail("decoder", "the adapter is {} on {}, the model computes in {} on {} (convert it with to())",
         dtype_name(adapter.dtype()), adapter.device().str(), dtype_name(dtype), device.str());
}

void Decoder::add_adapter_product(const lora::LoraAdapter& adapter, double sign) {
  check_adapter(adapter, adapter.device(), adapter.dtype());
  const DType work = dtype_ == DType::f64 ? DType::f64 : DType::f32;
  for (int64_t i = 0; i < adapter.layers(); ++i)
    for (lora::Projection p : lora::kProjections)
      if (const lora::LoraPair* pair = adapter.find(i, p)) {
        const Tensor w = projection(i, p).first;
        const Tensor delta = ops::matmul(pair->b.to(device_).to(work), pair->a.to(device_).to(work));
        w.copy_(ops::add(w.to(work), ops::scale(delta, sign * adapter.config().scale())));
      }
}

void Decoder::merge_adapter(const lora::LoraAdapter& adapter) {
  add_adapter_product(adapter, 1.0);
}

void Decoder::unmerge_adapter(const lora::LoraAdapter& adapter) {
  add_adapter_product(adapter, -1.0);
}

Tensor Decoder::forward(const Tensor& ids, KvCache* cache, const lora::LoraAdapter* adapter) const {
  const Tensor h = final_hidden(ids, cache, adapter);
  return ops::linear(h, lm_head_, Tensor()).to(DType::f32);
}

Tensor Decoder::forward_last(const Tensor& ids, KvCache* cache, const lora::LoraAdapter* adapter) const {
  const Tensor h = final_hidden(ids, cache, adapter);
  return ops::linear(h.select(1, h.size(1) - 1), lm_head_, Tensor()).to(DType::f32);
}

Tensor Decoder::forward_at_positions(const Tensor& ids, const Tensor& positions, const Tensor& lengths,
                                     KvCache& cache, const lora::LoraAdapter* adapter) const {
  const int64_t batch = ids.size(0), heads = config_.num_attention_heads,
                kv_heads = config_.num_key_value_heads, dim = config_.head_dim;
  if (ids.dim() != 2 || ids.size(1) != 1 || cache.batch() != batch)
    fail("decoder", "a decode step takes ids [{}, 1] for the cache's batch, got {}", cache.batch(),
         ids.str());
  ops::RopeOptions rope;  // positions come from `positions`
  rope.theta = config_.rope_theta;
  ops::AttentionOptions attention;
  attention.causal = false;  // one query per row sees every cached key below its length
  attention.kv_lengths = lengths;
  attention.cache_prefix_settled = true;  // the step writes only the cache rows at `positions`
  Tensor h = ops::embedding_unchecked(embed_tokens_, ids);
  for (size_t i = 0; i < layers_.size(); ++i) {
    const DecoderLayerWeights& l = layers_[i];
    const auto layer = static_cast<int64_t>(i);
    const auto project = [&](const Tensor& x, lora::Projection p) {
      const auto [w, bias] = projection(layer, p);
      const lora::LoraPair* pair = adapter ? adapter->find(layer, p) : nullptr;
      return pair ? ops::lora_linear(x, w, pair->a, pair->b, adapter->config().scale(), bias).y
                  : ops::linear(x, w, bias);
    };
    using lora::Projection;
    const auto adapted = [&](Projection p) {
      return adapter != nullptr && adapter->find(layer, p) != nullptr;
    };
    Tensor q;
    if (!adapted(Projection::q) && !adapted(Projection::k) && !adapted(Projection::v)) {
      // The norm, the q, k, v product, the rotation and the cache writes in one step.
      q = ops::rms_norm_linear_rope_write_cache(h, l.input_norm, config_.rms_norm_eps, l.qkv, l.qkv_bias,
                                                positions, heads, kv_heads, cache.keys(layer),
                                                cache.values(layer), rope);
    } else {
      const Tensor x = ops::rms_norm(h, l.input_norm, config_.rms_norm_eps);
      ops::RopeOptions rope_at = rope;
      rope_at.positions = positions.view({batch, 1});
      q = ops::rope(project(x, Projection::q).view({batch, 1, heads, dim}), rope_at).transpose(1, 2);
      const Tensor k =
          ops::rope(project(x, Projection::k).view({batch, 1, kv_heads, dim}), rope_at).transpose(1, 2);
      const Tensor v = project(x, Projection::v).view({batch, 1, kv_heads, dim}).transpose(1, 2);
      ops::write_at_positions(cache.keys(layer), k, positions);
      ops::write_at_positions(cache.values(layer), v, positions);
    }
    const Tensor attended = ops::attention(q, cache.keys(layer), cache.values(layer), attention)
                                .out.transpose(1, 2)
                                .reshape({batch, 1, heads * dim});
    // The o and down products add into the residual stream in place, which the step owns: h starts as the
    // embedding's fresh output.
    if (!adapted(Projection::o)) {
      ops::add_linear(h, attended, l.o, l.o_bias);
    } else {
      h = ops::add(project(attended, Projection::o), h);
    }
    Tensor gated;
    if (!adapted(Projection::gate) && !adapted(Projection::up)) {
      gated = ops::rms_norm_linear_swiglu(h, l.post_attention_norm, config_.rms_norm_eps, l.gate_up,
                                          l.gate_up_bias);
    } else {
      const Tensor x = ops::rms_norm(h, l.post_attention_norm, config_.rms_norm_eps);
      gated = ops::swiglu(project(x, Projection::gate), project(x, Projection::up));
    }
    if (!adapted(Projection::down)) {
      ops::add_linear(h, gated, l.down, l.down_bias);
    } else {
      h = ops::add(h, project(gated, Projection::down));
    }
  }
  return ops::rms_norm_linear(h.view({batch, config_.hidden_size}), final_norm_, config_.rms_norm_eps,
                              lm_head_);
}

Tensor Decoder::final_hidden(const Tensor& ids, KvCache* cache, const lora::LoraAdapter* adapter) const {
  if (ids.dim() != 2) fail("decoder", "ids must be [batch, seq], got {}", ids.str());
  if (adapter) check_adapter(*adapter, device_, dtype_);
  const int64_t batch = ids.size(0), seq = ids.size(1);
  const int64_t past = cache ? cache->length() : 0;
  if (past + seq > config_.max_position_embeddings)
    fail("decoder", "{} positions exceed the model's context of {}", past + seq,
         config_.max_position_embeddings);
  const int64_t heads = config_.num_attention_heads, kv_heads = config_.num_key_value_heads,
                dim = config_.head_dim;
  const bool ragged = cache && cache->ragged();
  ops::RopeOptions rope;
  rope.theta = config_.rope_theta;
  rope.position_offset = past;
  ops::AttentionOptions attention;
  if (ragged) {
    // Each row's token sits at its own position and sees that row's keys only.
    if (seq != 1) fail("decoder", "a ragged KV cache takes one token per row, got {}", seq);
    std::vector<int64_t> positions = cache->row_lengths(), lengths;
    for (int64_t p : positions) lengths.push_back(p + 1);
    if (*std::max_element(lengths.begin(), lengths.end()) > config_.max_position_embeddings)
      fail("decoder", "{} positions exceed the model's context of {}",
           *std::max_element(lengths.begin(), lengths.end()), config_.max_position_embeddings);
    rope.positions = Tensor::from_vector(positions, {batch, 1}).to(device_);
    attention.causal = false;
    attention.kv_lengths = Tensor::from_vector(lengths, {batch}).to(device_);
  }
  Tensor h = ops::embedding(embed_tokens_, ids.to(device_));
  for (size_t i = 0; i < layers_.size(); ++i) {
    const DecoderLayerWeights& l = layers_[i];
    const auto project = [&](const Tensor& x, lora::Projection p) {
      const auto [w, bias] = projection(static_cast<int64_t>(i), p);
      const lora::LoraPair* pair = adapter ? adapter->find(static_cast<int64_t>(i), p) : nullptr;
      return pair ? ops::lora_linear(x, w, pair->a, pair->b, adapter->config().scale(), bias).y
                  : ops::linear(x, w, bias);
    };
    using lora::Projection;
    const Tensor x = ops::rms_norm(h, l.input_norm, config_.rms_norm_eps);
    const Tensor q =
        ops::rope(project(x, Projection::q).view({batch, seq, heads, dim}), rope).transpose(1, 2);
    Tensor k = ops::rope(project(x, Projection::k).view({batch, seq, kv_heads, dim}), rope).transpose(1, 2);
    Tensor v = project(x, Projection::v).view({batch, seq, kv_heads, dim}).transpose(1, 2);
    if (ragged) {
      std::tie(k, v) = cache->append_ragged(static_cast<int64_t>(i), k, v);
    } else if (cache) {
      std::tie(k, v) = cache->append(static_cast<int64_t>(i), k, v);
    }
    const Tensor attended =
        ops::attention(q, k, v, attention).out.transpose(1, 2).reshape({batch, seq, heads * dim});
    const auto mid = ops::rms_norm_residual(project(attended, Projection::o), h, l.post_attention_norm,
                                            config_.rms_norm_eps);
    const Tensor mlp = project(ops::swiglu(project(mid.y, Projection::gate), project(mid.y, Projection::up)),
                               Projection::down);
    h = ops::add(mid.sum, mlp);
  }
  if (cache) cache->advance(seq);
  return ops::rms_norm(h, final_norm_, config_.rms_norm_eps);
}

}  // namespace wick::models
