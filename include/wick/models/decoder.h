// The Qwen2 / Llama-family decoder, one implementation driven by the config: grouped KV heads, optional q/k/v
// (and o/MLP) biases, RoPE with the config's theta, RMSNorm, SwiGLU MLP, tied or separate lm_head.
#pragma once

#include <memory>
#include <vector>

#include "wick/lora/adapter.h"
#include "wick/models/config.h"
#include "wick/models/weights.h"
#include "wick/tensor.h"

namespace wick::models {

// Keys and values of every layer, [batch, kv_heads, capacity, head_dim], preallocated; the first length()
// positions are filled.
class KvCache {
 public:
  KvCache(const ModelConfig& config, int64_t batch, int64_t capacity, DType dtype, Device device);
  int64_t length() const { return length_; }
  int64_t capacity() const { return capacity_; }
  int64_t batch() const { return batch_; }
  void reset() { length_ = 0; }

  // Writes k, v [batch, kv_heads, new, head_dim] of `layer` at position length() and returns the filled views
  // [batch, kv_heads, length() + new, head_dim]. advance() moves length() after the last layer.
  std::pair<Tensor, Tensor> append(int64_t layer, const Tensor& k, const Tensor& v);
  void advance(int64_t tokens);

  // Batched generation of sequences of different lengths: row b holds row_lengths()[b] positions. copy_row
  // fills row `row` from the (single-row) cache `other` and makes the cache ragged; a ragged cache takes one
  // token per row per forward, each at its own position.
  void copy_row(int64_t row, const KvCache& other);
  bool ragged() const { return !row_lengths_.empty(); }
  const std::vector<int64_t>& row_lengths() const { return row_lengths_; }
  // Ragged: writes each row's new key/value at its own length; returns views up to the longest row + 1.
  std::pair<Tensor, Tensor> append_ragged(int64_t layer, const Tensor& k, const Tensor& v);
  // The whole buffers of a layer, [batch, kv_heads, capacity, head_dim].
  const Tensor& keys(int64_t layer) const { return keys_.at(static_cast<size_t>(layer)); }
  const Tensor& values(int64_t layer) const { return values_.at(static_cast<size_t>(layer)); }

 private:
  std::vector<Tensor> keys_, values_;
  int64_t batch_, capacity_, length_ = 0;
  std::vector<int64_t> row_lengths_;
};

struct DecoderLayerWeights {
  Tensor input_norm, post_attention_norm;
  Tensor q, k, v, o;                      // [out, in]
  Tensor q_bias, k_bias, v_bias, o_bias;  // undefined when absent
  Tensor gate, up, down;
  Tensor gate_bias, up_bias, down_bias;
  // q, k and v are row blocks of one [q_out + 2·kv_out, in] matrix, gate and up of one [2·inter, in] matrix
  // (biases likewise), so one product can compute them together.
  Tensor qkv, qkv_bias, gate_up, gate_up_bias;
};

class Decoder {
 public:
  // Loads every weight the config implies from `weights`, converted to (device, dtype).
  Decoder(const ModelConfig& config, const WeightSource& weights, Device device, DType dtype);

  const ModelConfig& config() const { return config_; }
  Device device() const { return device_; }
  DType dtype() const { return dtype_; }

  // ids: i32/i64 [batch, seq] with every id < vocab_size. Without a cache the positions are 0..seq-1; with
  // one they continue from cache->length(), the new keys/values are stored, and the cache advances. Returns
  // f32 logits [batch, seq, vocab]. An adapter (on the model's device and dtype, see LoraAdapter::to) is
  // applied unmerged to the projections it targets; dropout is an identity here, as in evaluation.
  Tensor forward(const Tensor& ids, KvCache* cache = nullptr,
                 const lora::LoraAdapter* adapter = nullptr) const;
  // As forward, but only the logits of each row's last position: f32 [batch, vocab] (what generation needs,
  // without the [seq × vocab] product of a prefill).
  Tensor forward_last(const Tensor& ids, KvCache* cache = nullptr,
                      const lora::LoraAdapter* adapter = nullptr) const;

  // One decode step with positions held on the device, for a captured CUDA graph: ids i64 [batch, 1] on the
  // model's device, positions i64 [batch] (where each row's token goes; the cache holds positions[b] before
  // it), lengths i64 [batch] = positions + 1. Nothing is read back to the host and the cache's length() is
  // not used or moved: the caller owns the positions. Returns the last logits [batch, vocab] in the model's
  // dtype.
  Tensor forward_at_positions(const Tensor& ids, const Tensor& positions, const Tensor& lengths,
                              KvCache& cache, const lora::LoraAdapter* adapter = nullptr) const;

  // W += scale·B·A for every projection the adapter targets (computed in f32, stored in the model's dtype);
  // unmerge_adapter subtracts it again (exactly only in f32/f64: a bf16 round trip rounds twice).
  void merge_adapter(const lora::LoraAdapter& adapter);
  void unmerge_adapter(const lora::LoraAdapter& adapter);

  // The weights, for training code that runs the layers itself.
  const Tensor& embed_tokens() const { return embed_tokens_; }
  const Tensor& final_norm() const { return final_norm_; }
  const Tensor& lm_head() const { return lm_head_; }
  const DecoderLayerWeights& layer(int64_t i) const { return layers_.at(static_cast<size_t>(i)); }
  // The frozen weight and bias of a projection in layer i.
  std::pair<Tensor, Tensor> projection(int64_t i, lora::Projection p) const;
  // Refuses an adapter whose layer count, device or dtype do not fit this model.
  void check_adapter(const lora::LoraAdapter& adapter, Device device, DType dtype) const;

 private:
  ModelConfig config_;
  Device device_;
  DType dtype_;
  Tensor embed_tokens_, final_norm_, lm_head_;
  std::vector<DecoderLayerWeights> layers_;

  void add_adapter_product(const lora::LoraAdapter& adapter, double sign);
  // The final-normed hidden states [batch, seq, hidden].
  Tensor final_hidden(const Tensor& ids, KvCache* cache, const lora::LoraAdapter* adapter) const;
};

}  // namespace wick::models
