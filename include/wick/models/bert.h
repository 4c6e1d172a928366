// The BERT-family encoder (all-MiniLM-L6-v2, E5 and the like): embeddings with token types, post-norm
// transformer layers with GELU, padded batches through the attention mask, and sentence pooling.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <tuple>
#include <vector>

#include "wick/models/config.h"
#include "wick/models/weights.h"
#include "wick/tensor.h"

namespace wick::models {

enum class Pooling { mean, cls };

struct BertLayerWeights {
  // q, k and v are views of one packed [3·hidden, hidden] weight (and bias): one product for the three.
  Tensor qkv, qkv_bias;
  Tensor q, q_bias, k, k_bias, v, v_bias, attention_out, attention_out_bias, attention_norm,
      attention_norm_bias;
  Tensor intermediate, intermediate_bias, output, output_bias, output_norm, output_norm_bias;
};

class BertEncoder {
 public:
  // Loads every weight the config implies; names may carry a "bert." prefix (as task models save them).
  BertEncoder(const ModelConfig& config, const WeightSource& weights, Device device, DType dtype);

  const ModelConfig& config() const { return config_; }
  Device device() const { return device_; }

  // ids, attention_mask, token_type_ids: i32/i64 [batch, seq]; the mask is 1 for tokens and 0 for padding at
  // the end of a row (right padding); an undefined mask means no padding, undefined types mean type 0.
  // Returns f32 [batch, seq, hidden].
  Tensor forward(const Tensor& ids, const Tensor& attention_mask = Tensor(),
                 const Tensor& token_type_ids = Tensor()) const;

  // Sentence embeddings f32 [batch, hidden]: mask-aware mean over tokens (or the first token with cls), then
  // L2-normalised when `normalize`. On a GPU, an input shape of at most kGraphTokens tokens seen a second
  // time is captured as a CUDA graph and replayed from then on (one launch instead of ~60); calls are then
  // serialized per encoder.
  Tensor embed(const Tensor& ids, const Tensor& attention_mask = Tensor(),
               const Tensor& token_type_ids = Tensor(), Pooling pooling = Pooling::mean,
               bool normalize = true) const;

  static constexpr int64_t kGraphTokens = 4096;
  static constexpr size_t kMaxGraphs = 8;

 private:
  // Validated inputs, all i64 in one buffer on the model's device (one copy from the host): ids and token
  // types [batch, seq], per-row token counts [batch], positions [seq], as views of `packed`.
  struct Inputs {
    Tensor packed, ids, types, lengths, positions;
    static Inputs views_of(const Tensor& packed, int64_t batch, int64_t seq);
  };
  struct Captured;  // one input shape's graph and the buffers it reads and writes
  using GraphKey = std::tuple<int64_t, int64_t, Pooling, bool>;

  // The packed buffer on the host (checked).
  Tensor prepare(const Tensor& ids, const Tensor& attention_mask, const Tensor& token_type_ids) const;
  Tensor encode(const Inputs& in) const;  // last hidden state [batch, seq, hidden] in the model's dtype
  Tensor pool(const Tensor& hidden, const Inputs& in, Pooling pooling, bool normalize) const;
  Tensor embed_captured(const Tensor& host_inputs, int64_t batch, int64_t seq, Pooling pooling,
                        bool normalize) const;

  ModelConfig config_;
  Device device_;
  DType dtype_;
  Tensor word_embeddings_, position_embeddings_, token_type_embeddings_, embedding_norm_,
      embedding_norm_bias_;
  std::vector<BertLayerWeights> layers_;
  Tensor unit_norm_scale_;  // [hidden] of 1/sqrt(hidden): rms_norm with it scales a row to unit length
  mutable std::mutex graphs_mutex_;
  mutable std::map<GraphKey, int> shapes_seen_;
  mutable std::map<GraphKey, std::shared_ptr<Captured>> graphs_;
};

}  // namespace wick::models
