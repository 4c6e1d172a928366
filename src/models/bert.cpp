// BERT forward with the device-agnostic ops. Embeddings: word + position + token type, then LayerNorm. Each
// layer (post-norm): h = LN(h + dense(attention(q, k, v))), h = LN(h + dense(gelu(dense(h)))). q, k and v
// come from one packed product and reach the attention as strided views of it; the attention's output is
// already [batch, seq, hidden]; both residual sums are accumulated by their products (beta = 1). Right-padded
// rows become per-row key lengths for the attention, which masks the padding keys exactly as the reference's
// additive mask does; padded query rows are computed too, as in the reference.
#include "wick/models/bert.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "wick/cuda.h"
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

// Ids on the host, each checked against the table it indexes.
std::vector<int64_t> checked_ids(const Tensor& t, int64_t limit, std::string_view what) {
  const std::vector<int64_t> values = t.to(Device::cpu()).to_vector<int64_t>();
  const int64_t seq = t.size(1);
  for (size_t i = 0; i < values.size(); ++i)
    if (values[i] < 0 || values[i] >= limit)
      fail("bert", "{} {} at row {}, position {} is outside [0, {})", what, values[i],
           static_cast<int64_t>(i) / seq, static_cast<int64_t>(i) % seq, limit);
  return values;
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
  unit_norm_scale_ = Tensor::full({hidden}, 1.0 / std::sqrt(static_cast<double>(hidden)), DType::f32, device);
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
    pack_rows({&l.q, &l.k, &l.v}, l.qkv);
    pack_rows({&l.q_bias, &l.k_bias, &l.v_bias}, l.qkv_bias);
    layers_.push_back(std::move(l));
  }
}

struct BertEncoder::Captured {
  Inputs in;  // the buffer the graph reads; each call copies its inputs into it
  Tensor result;
  std::unique_ptr<cuda::Graph> graph;
};

BertEncoder::Inputs BertEncoder::Inputs::views_of(const Tensor& packed, int64_t batch, int64_t seq) {
  const int64_t tokens = batch * seq;
  return {packed, packed.narrow(0, 0, tokens).view({batch, seq}),
          packed.narrow(0, tokens, tokens).view({batch, seq}), packed.narrow(0, 2 * tokens, batch),
          packed.narrow(0, 2 * tokens + batch, seq)};
}

Tensor BertEncoder::prepare(const Tensor& ids, const Tensor& attention_mask,
                            const Tensor& token_type_ids) const {
  if (ids.dim() != 2) fail("bert", "ids must be [batch, seq], got {}", ids.str());
  const int64_t batch = ids.size(0), seq = ids.size(1), tokens = batch * seq;
  if (seq > config_.max_position_embeddings)
    fail("bert", "{} tokens exceed the model's {} positions", seq, config_.max_position_embeddings);
  for (const auto& [name, t] :
       {std::pair{"attention_mask", &attention_mask}, {"token_type_ids", &token_type_ids}})
    if (t->defined() && t->shape() != ids.shape())
      fail("bert", "{} must have the shape of ids {}, got {}", name, shape_str(ids.shape()), t->str());
  std::vector<int64_t> packed = checked_ids(ids, config_.vocab_size, "token id");
  packed.resize(static_cast<size_t>(2 * tokens + batch + seq), 0);
  if (token_type_ids.defined()) {
    const std::vector<int64_t> types = checked_ids(token_type_ids, config_.type_vocab_size, "token type");
    std::copy(types.begin(), types.end(), packed.begin() + tokens);
  }
  const std::vector<int64_t> lengths =
      attention_mask.defined() ? row_lengths(attention_mask, batch, seq) : std::vector<int64_t>(batch, seq);
  std::copy(lengths.begin(), lengths.end(), packed.begin() + 2 * tokens);
  for (int64_t s = 0; s < seq; ++s) packed[2 * tokens + batch + s] = s;
  return Tensor::from_vector(packed, {static_cast<int64_t>(packed.size())});
}

Tensor BertEncoder::encode(const Inputs& in) const {
  const int64_t batch = in.ids.size(0), seq = in.ids.size(1), tokens = batch * seq;
  const int64_t heads = config_.num_attention_heads, dim = config_.head_dim, hidden = config_.hidden_size;
  const double eps = config_.layer_norm_eps;
  Tensor h = ops::embedding_sum_layer_norm(word_embeddings_, in.ids, token_type_embeddings_, in.types,
                                           position_embeddings_, in.positions, embedding_norm_,
                                           embedding_norm_bias_, eps)
                 .view({tokens, hidden});
  ops::AttentionOptions attention;
  attention.causal = false;
  attention.kv_lengths = in.lengths;
  ops::GemmOptions residual;  // h += x·Wᵀ + b, in place
  residual.transpose_b = true;
  residual.beta = 1.0;
  for (const BertLayerWeights& l : layers_) {
    const Tensor qkv = ops::linear(h, l.qkv, l.qkv_bias).view({batch, seq, 3, heads, dim});
    const auto part = [&](int64_t i) { return qkv.select(2, i).transpose(1, 2); };
    const Tensor context =
        ops::attention(part(0), part(1), part(2), attention).out.transpose(1, 2).reshape({tokens, hidden});
    residual.bias = l.attention_out_bias;
    ops::gemm(context, l.attention_out, h, residual);
    h = ops::layer_norm(h, l.attention_norm, l.attention_norm_bias, eps);
    const Tensor inner = ops::gelu(ops::linear(h, l.intermediate, l.intermediate_bias));
    residual.bias = l.output_bias;
    ops::gemm(inner, l.output, h, residual);
    h = ops::layer_norm(h, l.output_norm, l.output_norm_bias, eps);
  }
  return h.view({batch, seq, hidden});
}

Tensor BertEncoder::pool(const Tensor& hidden, const Inputs& in, Pooling pooling, bool normalize) const {
  // Mean over each row's tokens (an empty row pools to zeros), or the first token's state; f32 either way.
  const Tensor pooled = pooling == Pooling::cls ? hidden.select(1, 0).to(DType::f32).contiguous()
                                                : ops::mean_pool(hidden, in.lengths).to(DType::f32);
  if (!normalize) return pooled;
  // x / ‖x‖ = rms_norm(x) / sqrt(width); the tiny eps keeps a zero vector zero, far below any real row's mean
  // square.
  return ops::rms_norm(pooled, unit_norm_scale_, 1e-30);
}

Tensor BertEncoder::forward(const Tensor& ids, const Tensor& attention_mask,
                            const Tensor& token_type_ids) const {
  const Tensor host = prepare(ids, attention_mask, token_type_ids);
  return encode(Inputs::views_of(host.to(device_), ids.size(0), ids.size(1))).to(DType::f32);
}

Tensor BertEncoder::embed(const Tensor& ids, const Tensor& attention_mask, const Tensor& token_type_ids,
                          Pooling pooling, bool normalize) const {
  const Tensor host = prepare(ids, attention_mask, token_type_ids);
  const int64_t batch = ids.size(0), seq = ids.size(1);
  if (device_.is_cuda() && batch * seq <= kGraphTokens)
    return embed_captured(host, batch, seq, pooling, normalize);
  const Inputs in = Inputs::views_of(host.to(device_), batch, seq);
  return pool(encode(in), in, pooling, normalize);
}

// A shape seen once runs eagerly (varying shapes never pay for captures); seen again, it is captured, and
// replayed from then on. At most kMaxGraphs shapes keep graphs; others keep running eagerly.
Tensor BertEncoder::embed_captured(const Tensor& host_inputs, int64_t batch, int64_t seq, Pooling pooling,
                                   bool normalize) const {
  const GraphKey key{batch, seq, pooling, normalize};
  std::lock_guard<std::mutex> lock(graphs_mutex_);
  auto found = graphs_.find(key);
  if (found == graphs_.end()) {
    const Inputs in = Inputs::views_of(host_inputs.to(device_), batch, seq);
    if (++shapes_seen_[key] < 2 || graphs_.size() >= kMaxGraphs)
      return pool(encode(in), in, pooling, normalize);
    auto captured = std::make_shared<Captured>();
    captured->in = in;  // the graph reads this buffer from now on
    // Made before the capture: a graph whose own allocation outlives it could not be launched again.
    captured->result = Tensor::empty({batch, config_.hidden_size}, DType::f32, device_);
    captured->graph = std::make_unique<cuda::Graph>(device_.index);
    captured->graph->begin();
    captured->result.copy_(pool(encode(captured->in), captured->in, pooling, normalize));
    captured->graph->end();
    found = graphs_.emplace(key, std::move(captured)).first;
  } else {
    found->second->in.packed.copy_(host_inputs);
  }
  found->second->graph->replay();
  return found->second->result.clone();
}

}  // namespace wick::models
