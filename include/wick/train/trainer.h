// The LoRA training loop: micro-batches accumulated into optimizer steps, AdamW on f32 master weights with a
// learning-rate schedule and global-norm clipping, NaN/Inf detection, evaluation, and checkpoints from which
// a resumed run continues with exactly the losses of an uninterrupted one.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "wick/lora/adapter.h"
#include "wick/models/decoder.h"
#include "wick/train/dataset.h"
#include "wick/train/schedule.h"

namespace wick::train {

struct TrainerOptions {
  int64_t batch_size = 4;
  int64_t grad_accumulation = 1;
  int64_t epochs = 1;
  int64_t max_steps = 0;  // > 0 overrides epochs
  double lr = 2e-4;
  double weight_decay = 0.0;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  double max_grad_norm = 1.0;  // 0 turns clipping off
  Schedule schedule = Schedule::cosine;
  int64_t warmup_steps = 0;
  bool skip_nonfinite = false;  // skip a step with a NaN/Inf loss or gradient instead of stopping
  bool checkpointing = false;   // recompute block activations in the backward
  bool packing = false;
  bool shuffle = true;  // a seeded new order every epoch (else the data's order)
  int64_t max_length = 1024;
  uint64_t seed = 42;  // data order and dropout
  int32_t pad_id = 0;
};

struct StepRecord {
  int64_t step = 0;  // 1 for the first
  int64_t epoch = 0;
  double loss = 0;
  double lr = 0;
  double grad_norm = 0;  // before clipping
  int64_t tokens = 0;    // tokens processed (padding included)
  int64_t trained_tokens = 0;
  double seconds = 0;
  bool skipped = false;
  std::optional<double> eval_loss;
};

class Trainer {
 public:
  // `adapter`: the weights to train (any dtype/device; kept as f32 master weights on the model's device).
  Trainer(const models::Decoder& model, const lora::LoraAdapter& adapter, std::vector<Example> train,
          std::vector<Example> validation, const TrainerOptions& options);

  int64_t total_steps() const { return total_steps_; }
  int64_t steps_per_epoch() const { return steps_per_epoch_; }
  int64_t step() const { return step_; }
  bool done() const { return step_ >= total_steps_; }
  bool has_validation() const { return !validation_.empty(); }

  // One optimizer step (its micro-batches, clipping, AdamW); throws on a non-finite loss or gradient unless
  // skip_nonfinite.
  StepRecord train_step();
  // Mean loss over the validation examples (token-weighted).
  double evaluate();

  // The master weights.
  const lora::LoraAdapter& adapter() const { return master_; }
  const std::vector<StepRecord>& history() const { return history_; }
  void record_eval(double loss) { history_.back().eval_loss = loss; }

  // Writes a checkpoint folder (adapter + optimizer state + progress), staged and swapped in whole.
  void save_checkpoint(const std::string& folder) const;
  // Continues from a checkpoint written with the same data and options (refused otherwise).
  void resume(const std::string& folder);

 private:
  const Batch& micro_batch(int64_t epoch, int64_t index);
  std::string fingerprint() const;

  const models::Decoder& model_;
  TrainerOptions options_;
  std::vector<Example> train_, validation_;
  lora::LoraAdapter master_, compute_, grads_, m_, v_;
  PackedWeights packed_weights_;
  bool separate_compute_ = false;
  int64_t micro_per_epoch_ = 0, steps_per_epoch_ = 0, total_steps_ = 0;
  int64_t step_ = 0, optimizer_steps_ = 0;
  int64_t cached_epoch_ = -1;
  std::vector<Batch> epoch_batches_;
  std::vector<StepRecord> history_;
};

}  // namespace wick::train
