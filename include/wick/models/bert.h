// The BERT-family encoder (all-MiniLM-L6-v2, E5 and the like): embeddings with token types, post-norm
// transformer layers with GELU, padded batches through the attention mask, and sentence pooling.
#pragma once

#include <vector>

#include "wick/models/config.h"
#include "wick/models/weights.h"
#include "wick/tensor.h"

namespace wick::models {

enum class Pooling { mean, cls };

struct BertLayerWeights {
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
  // L2-normalised when `normalize`.
  Tensor embed(const Tensor& ids, const Tensor& attention_mask = Tensor(),
               const Tensor& token_type_ids = Tensor(), Pooling pooling = Pooling::mean,
               bool normalize = true) const;

 private:
  ModelConfig config_;
  Device device_;
  DType dtype_;
  Tensor word_embeddings_, position_embeddings_, token_type_embeddings_, embedding_norm_,
      embedding_norm_bias_;
  std::vector<BertLayerWeights> layers_;
};

}  // namespace wick::models
