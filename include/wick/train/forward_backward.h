// The decoder's loss and its gradient with respect to a LoRA adapter: the forward pass keeps what the
// backward needs (or, with checkpointing, only each block's input, recomputing the block in the backward),
// and the backward produces gradients for the LoRA matrices only — the frozen weights get no weight-gradient
// GEMMs.
#pragma once

#include <cstdint>
#include <map>

#include "wick/lora/adapter.h"
#include "wick/models/decoder.h"
#include "wick/tensor.h"

namespace wick::train {

inline constexpr int32_t kIgnoreIndex = -100;

// One micro-batch: token ids and, per position, the token to predict there (kIgnoreIndex where no loss).
struct Batch {
  Tensor ids;           // i32 [batch, seq]
  Tensor targets;       // i32 [batch, seq]
  int64_t counted = 0;  // targets that count
};

// The frozen q/k/v and gate/up matrices widened with room for the LoRA terms (the packed products in
// forward_backward.cpp), kept between calls by whoever runs many steps on one model: built on first use, each
// entry holding the model's matrix it widens, so a matrix never aliases another model's.
struct PackedWeights {
  struct Entry {
    Tensor frozen, widened;
  };
  std::map<const void*, Entry> entries;  // by the frozen matrix's address
};

struct ForwardBackwardOptions {
  bool checkpointing = false;
  PackedWeights* packed_weights = nullptr;  // reuse across calls; null builds them each call
  // The LoRA-input dropout stream (the adapter's config gives p): each projection draws from
  // (seed, draw_base + layer·7 + projection).
  uint64_t dropout_seed = 0;
  uint64_t dropout_draw_base = 0;
  // The gradient is of loss_weight × (mean loss of this batch): the batch's share of an accumulated step.
  double loss_weight = 1.0;
  // Add into `grads` instead of overwriting it.
  bool accumulate = false;
};

// `adapter` holds the LoRA weights in the model's dtype and device; `grads` has the adapter's layout, f32
// (f64 for an f64 model), on the model's device. Returns the mean loss over the counted targets.
double forward_backward(const models::Decoder& model, const lora::LoraAdapter& adapter, const Batch& batch,
                        lora::LoraAdapter& grads, const ForwardBackwardOptions& options = {});

// The mean loss without gradients (dropout off). `packed_weights` as in ForwardBackwardOptions.
double evaluate_loss(const models::Decoder& model, const lora::LoraAdapter* adapter, const Batch& batch,
                     PackedWeights* packed_weights = nullptr);

}  // namespace wick::train
