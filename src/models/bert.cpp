// BERT forward with the device-agnostic ops. Embeddings: word + position + token type, then LayerNorm. Each
// layer (post-norm): h = LN(h + dense(attention(q, k, v))), h = LN(h + dense(gelu(dense(h)))). Right-padded
// rows become per-row key lengths for the attention, which masks the padding keys exactly as the reference's
// additive mask does; padded query rows are computed too, as in the reference.
#include "wick/models/bert.h"

#include <cmath>

#include <fmt/format.h>

#include "wick/error.h"
#include "wick/ops.h"

namespace wick::models {
namespace {

// Per-row token counts of a right-padded 0/1 mask; anything else is refused.
std::vector<int64_t> row_lengths(const Tensor& mask, int64_t batch, int64_t seq) {
  const std::vector<int64_t> m = mask.to_vector<int64_t>();
  std::vector<int64_t> lengths(batch);
  for (int64_t b = 0; b < batch; ++b) {
    int64_t n = 0;
    while (n < seq && m[b * seq + n] == 1) ++n;
    for (int64_t j = n; j < seq; ++j)
      if (m[b * seq + j] != 0)
        fail("bert", "attention_mask row {} is not right-padded 1s then 0s (value {} at position {})", b,
             m[b * seq + j], j);
    lengths[b] = n;
  }
  return lengths;
}

}  // namespace

BertEncoder::BertEncoder(const ModelConfig& config, const WeightSource& weights, Device device, DType dtype)
    : config_(config), device_(device), dtype_(dtype) {
  if (config.architecture != Architecture::bert)
    fail("model", "{}: model_type '{}' is not a BERT encoder", weights.origin(), config.model_type);
  const std::string prefix = weights.contains("bert.embeddings.word_embeddings.weight") ? "bert." : "";
  const int64_t hidden = config.hidden_size, inter = config.intermediate_size;
  auto load = [&](const std::string& name, const Shape& shape) {
    return weights.load(prefix + name, shape, device, dtype);
  };
  word_embeddings_ = load("embeddings.word_embeddings.weight", {config.vocab_size, hidden});
  position_embeddings_ =
      load("embeddings.position_embeddings.weight", {config.max_position_embeddings, hidden});
  token_type_embeddings_ = load("embeddings.token_type_embeddings.weight", {config.type_vocab_size, hidden});
  embedding_norm_ = load("embeddings.LayerNorm.weight", {hidden});
  embedding_norm_bias_ = load("embeddings.LayerNorm.bias", {hidden});
  for (int64_t i = 0; i < config.num_hidden_layers; ++i) {
    const std::string p = fmt::format("encoder.layer.{}.", i);
    BertLayerWeights l;
    l.q = load(p + "attention.self.query.weight", {hidden, hidden});
    l.q_bias = load(p + "attention.self.query.bias", {hidden});
    l.k = load(p + "attention.self.key.weight", {hidden, hidden});
    l.k_bias = load(p + "attention.self.key.bias", {hidden});
    l.v = load(p + "attention.self.value.weight", {hidden, hidden});
    l.v_bias = load(p + "attention.self.value.bias", {hidden});
    l.attention_out = load(p + "attention.output.dense.weight", {hidden, hidden});
    l.attention_out_bias = load(p + "attention.output.dense.bias", {hidden});
    l.attention_norm = load(p + "attention.output.LayerNorm.weight", {hidden});
    l.attention_norm_bias = load(p + "attention.output.LayerNorm.bias", {hidden});
    l.intermediate = load(p + "intermediate.dense.weight", {inter, hidden});
    l.intermediate_bias = load(p + "intermediate.dense.bias", {inter});
    l.output = load(p + "output.dense.weight", {hidden, inter});
    l.output_bias = load(p + "output.dense.bias", {hidden});
    l.output_norm = load(p + "output.LayerNorm.weight", {hidden});
    l.output_norm_bias = load(p + "output.LayerNorm.bias", {hidden});
    layers_.push_back(std::move(l));
  }
}

Tensor BertEncoder::forward(const Tensor& ids, const Tensor& attention_mask,
                            const Tensor& token_type_ids) const {
  if (ids.dim() != 2) fail("bert", "ids must be [batch, seq], got {}", ids.str());
  const int64_t batch = ids.size(0), seq = ids.size(1);
  if (seq > config_.max_position_embeddings)
    fail("bert", "{} tokens exceed the model's {} positions", seq, config_.max_position_embeddings);
  for (const auto& [name, t] :
       {std::pair{"attention_mask", &attention_mask}, {"token_type_ids", &token_type_ids}})
    if (t->defined() && t->shape() != ids.shape())
      fail("bert", "{} must have the shape of ids {}, got {}", name, shape_str(ids.shape()), t->str());
  const int64_t heads = config_.num_attention_heads, dim = config_.head_dim, hidden = config_.hidden_size;
  std::vector<int64_t> positions(seq);
  for (int64_t s = 0; s < seq; ++s) positions[s] = s;
  const Tensor types = token_type_ids.defined() ? token_type_ids.to(device_)
                                                : Tensor::zeros({batch, seq}, DType::i64, device_);
  Tensor h = ops::add(ops::add(ops::embedding(word_embeddings_, ids.to(device_)),
                               ops::embedding(token_type_embeddings_, types)),
                      ops::embedding(position_embeddings_, Tensor::from_vector(positions, {seq}, device_)));
  h = ops::layer_norm(h, embedding_norm_, embedding_norm_bias_, config_.layer_norm_eps);
  ops::AttentionOptions attention;
  attention.causal = false;
  if (attention_mask.defined())
    attention.kv_lengths = Tensor::from_vector(row_lengths(attention_mask, batch, seq), {batch}, device_);
  for (const BertLayerWeights& l : layers_) {
    auto heads_of = [&](const Tensor& w, const Tensor& b) {
      return ops::linear(h, w, b).view({batch, seq, heads, dim}).transpose(1, 2);
    };
    const Tensor context =
        ops::attention(heads_of(l.q, l.q_bias), heads_of(l.k, l.k_bias), heads_of(l.v, l.v_bias), attention)
            .out.transpose(1, 2)
            .reshape({batch, seq, hidden});
    h = ops::layer_norm(ops::add(ops::linear(context, l.attention_out, l.attention_out_bias), h),
                        l.attention_norm, l.attention_norm_bias, config_.layer_norm_eps);
    const Tensor inner = ops::gelu(ops::linear(h, l.intermediate, l.intermediate_bias));
    h = ops::layer_norm(ops::add(ops::linear(inner, l.output, l.output_bias), h), l.output_norm,
                        l.output_norm_bias, config_.layer_norm_eps);
  }
  return h.to(DType::f32);
}

Tensor BertEncoder::embed(const Tensor& ids, const Tensor& attention_mask, const Tensor& token_type_ids,
                          Pooling pooling, bool normalize) const {
  const Tensor hidden = forward(ids, attention_mask, token_type_ids);  // f32 [batch, seq, H]
  const int64_t batch = hidden.size(0), seq = hidden.size(1), width = hidden.size(2);
  Tensor pooled;
  if (pooling == Pooling::cls) {
    pooled = hidden.select(1, 0).contiguous();
  } else {
    // Σ_s mask[b, s]·h[b, s, :] / Σ_s mask[b, s], as one batched product [b, 1, seq]·[b, seq, H].
    const Tensor mask = attention_mask.defined() ? attention_mask.to(DType::f32).to(device_)
                                                 : Tensor::full({batch, seq}, 1.0, DType::f32, device_);
    const Tensor sums = ops::matmul(mask.view({batch, 1, seq}), hidden).view({batch, width});
    const Tensor counts = ops::sum_to_shape(mask, {batch, 1});
    pooled = ops::div(sums, counts);
  }
  if (!normalize) return pooled;
  // x / ‖x‖ = rms_norm(x) / sqrt(width)
  const Tensor ones = Tensor::full({width}, 1.0 / std::sqrt(static_cast<double>(width)), DType::f32, device_);
  return ops::rms_norm(pooled, ones, 0.0);
}

}  // namespace wick::models
