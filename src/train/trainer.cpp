#include "wick/train/trainer.h"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "wick/error.h"
#include "wick/io/atomic_file.h"
#include "wick/io/safetensors.h"
#include "wick/ops.h"

namespace wick::train {
namespace fs = std::filesystem;
namespace {

constexpr const char* kOptimizerFile = "optimizer.safetensors";
constexpr const char* kStateFile = "trainer_state.json";

lora::LoraAdapter zeros_like(const lora::LoraAdapter& adapter, DType dtype) {
  lora::LoraAdapter zeros = adapter.to(adapter.device(), dtype);
  zeros.flat().fill_(0.0);
  return zeros;
}

nlohmann::json record_json(const StepRecord& r) {
  nlohmann::json j = {{"step", r.step},
                      {"epoch", r.epoch},
                      {"loss", r.loss},
                      {"lr", r.lr},
                      {"grad_norm", r.grad_norm},
                      {"tokens", r.tokens},
                      {"trained_tokens", r.trained_tokens},
                      {"seconds", r.seconds},
                      {"skipped", r.skipped}};
  if (r.eval_loss) j["eval_loss"] = *r.eval_loss;
  // JSON has no NaN: a skipped step's non-finite values are stored as null.
  for (const char* key : {"loss", "grad_norm"})
    if (!std::isfinite(j[key].get<double>())) j[key] = nullptr;
  return j;
}

StepRecord record_from_json(const nlohmann::json& j) {
  StepRecord r;
  r.step = j.at("step");
  r.epoch = j.at("epoch");
  r.loss = j.at("loss").is_null() ? NAN : j.at("loss").get<double>();
  r.lr = j.at("lr");
  r.grad_norm = j.at("grad_norm").is_null() ? NAN : j.at("grad_norm").get<double>();
  r.tokens = j.at("tokens");
  r.trained_tokens = j.at("trained_tokens");
  r.seconds = j.at("seconds");
  r.skipped = j.at("skipped");
  if (j.contains("eval_loss")) r.eval_loss = j.at("eval_loss").get<double>();
  return r;
}

}  // namespace

Trainer::Trainer(const models::Decoder& model, const lora::LoraAdapter& adapter, std::vector<Example> train,
                 std::vector<Example> validation, const TrainerOptions& options)
    : model_(model), options_(options), train_(std::move(train)), validation_(std::move(validation)) {
  const TrainerOptions& o = options_;
  if (o.batch_size < 1) fail("train", "batch size must be >= 1, got {}", o.batch_size);
  if (o.grad_accumulation < 1)
    fail("train", "gradient accumulation must be >= 1, got {}", o.grad_accumulation);
  if (o.epochs < 1 && o.max_steps <= 0) fail("train", "train for at least one epoch or one step");
  if (!(o.lr > 0) || !std::isfinite(o.lr)) fail("train", "the learning rate must be > 0, got {}", o.lr);
  if (!(o.max_grad_norm >= 0))
    fail("train", "max_grad_norm must be >= 0 (0 for no clipping), got {}", o.max_grad_norm);
  if (o.warmup_steps < 0) fail("train", "warmup steps must be >= 0, got {}", o.warmup_steps);
  if (train_.empty()) fail("train", "no training examples");
  const DType master_dtype = model.dtype() == DType::f64 ? DType::f64 : DType::f32;
  master_ = adapter.to(model.device(), master_dtype);
  model.check_adapter(master_, model.device(), master_dtype);
  separate_compute_ = model.dtype() != master_dtype;
  if (separate_compute_) compute_ = master_.to(model.device(), model.dtype());
  grads_ = zeros_like(master_, master_dtype);
  m_ = zeros_like(master_, master_dtype);
  v_ = zeros_like(master_, master_dtype);
  micro_batch(0, 0);
  micro_per_epoch_ = static_cast<int64_t>(epoch_batches_.size());
  steps_per_epoch_ = std::max<int64_t>(1, micro_per_epoch_ / o.grad_accumulation);
  total_steps_ = o.max_steps > 0 ? o.max_steps : o.epochs * steps_per_epoch_;
}

const Batch& Trainer::micro_batch(int64_t epoch, int64_t index) {
  if (epoch != cached_epoch_) {
    BatchPlan plan;
    plan.batch_size = options_.batch_size;
    plan.max_length = options_.max_length;
    plan.packing = options_.packing;
    plan.shuffle = options_.shuffle;
    plan.seed = options_.seed;
    plan.pad_id = options_.pad_id;
    epoch_batches_ = epoch_batches(train_, plan, epoch);
    cached_epoch_ = epoch;
  }
  return epoch_batches_.at(static_cast<size_t>(index % static_cast<int64_t>(epoch_batches_.size())));
}

StepRecord Trainer::train_step() {
  if (done()) fail("train", "training is complete ({} steps)", total_steps_);
  const auto start = std::chrono::steady_clock::now();
  const TrainerOptions& o = options_;
  StepRecord record;
  record.step = step_ + 1;
  record.epoch = step_ / steps_per_epoch_;
  const int64_t first = (step_ % steps_per_epoch_) * o.grad_accumulation;
  std::vector<const Batch*> batches;
  int64_t counted = 0;
  for (int64_t j = 0; j < o.grad_accumulation; ++j) {
    const Batch& b = micro_batch(record.epoch, first + j);
    batches.push_back(&b);
    counted += b.counted;
    record.tokens += b.ids.numel();
  }
  record.trained_tokens = counted;
  record.lr = o.lr * lr_multiplier(o.schedule, optimizer_steps_, o.warmup_steps, total_steps_);
  const lora::LoraAdapter& weights = separate_compute_ ? compute_ : master_;
  const int64_t draws_per_batch = model_.config().num_hidden_layers * 7;
  double loss = 0;
  bool accumulated = false;
  for (int64_t j = 0; j < o.grad_accumulation; ++j) {
    const Batch& b = *batches[static_cast<size_t>(j)];
    if (b.counted == 0) continue;
    ForwardBackwardOptions fb;
    fb.checkpointing = o.checkpointing;
    fb.packed_weights = &packed_weights_;
    fb.dropout_seed = o.seed;
    fb.dropout_draw_base = static_cast<uint64_t>((step_ * o.grad_accumulation + j) * draws_per_batch);
    fb.loss_weight = static_cast<double>(b.counted) / static_cast<double>(counted);
    fb.accumulate = accumulated;
    loss += fb.loss_weight * forward_backward(model_, weights, b, grads_, fb);
    accumulated = true;
  }
  record.loss = counted > 0 ? loss : NAN;
  record.grad_norm = counted > 0 ? std::sqrt(ops::sum_of_squares(grads_.flat()).item()) : NAN;
  if (!std::isfinite(record.loss) || !std::isfinite(record.grad_norm)) {
    if (counted == 0 || o.skip_nonfinite) {
      record.skipped = true;
    } else {
      fail("train",
           "step {}: the {} is not finite (loss {}, gradient norm {}); stopping (lower the learning rate, or "
           "skip such steps)",
           record.step, std::isfinite(record.loss) ? "gradient" : "loss", record.loss, record.grad_norm);
    }
  }
  if (!record.skipped) {
    ops::AdamWOptions adam;
    adam.lr = record.lr;
    adam.beta1 = o.beta1;
    adam.beta2 = o.beta2;
    adam.eps = o.eps;
    adam.weight_decay = o.weight_decay;
    adam.step = ++optimizer_steps_;
    // PyTorch's clip_grad_norm_: scale by max_norm / (norm + 1e-6) when that is below 1.
    if (o.max_grad_norm > 0) adam.grad_scale = std::min(1.0, o.max_grad_norm / (record.grad_norm + 1e-6));
    ops::adamw_step(master_.flat(), grads_.flat(), m_.flat(), v_.flat(), adam);
    if (separate_compute_) compute_.copy_from(master_);
  }
  ++step_;
  record.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  history_.push_back(record);
  return record;
}

double Trainer::evaluate() {
  if (validation_.empty()) fail("train", "there is no validation data");
  BatchPlan plan;
  plan.batch_size = options_.batch_size;
  plan.max_length = options_.max_length;
  plan.packing = options_.packing;
  plan.shuffle = false;
  plan.pad_id = options_.pad_id;
  double total = 0;
  int64_t counted = 0;
  const lora::LoraAdapter& weights = separate_compute_ ? compute_ : master_;
  for (const Batch& b : epoch_batches(validation_, plan, 0)) {
    if (b.counted == 0) continue;
    total += evaluate_loss(model_, &weights, b, &packed_weights_) * static_cast<double>(b.counted);
    counted += b.counted;
  }
  if (counted == 0) fail("train", "the validation examples have nothing to learn");
  return total / static_cast<double>(counted);
}

std::string Trainer::fingerprint() const {
  const TrainerOptions& o = options_;
  return fmt::format(
      "examples={} validation={} batch={} accumulation={} epochs={} max_steps={} lr={} wd={} betas={},{} "
      "eps={} "
      "clip={} schedule={} warmup={} packing={} shuffle={} max_length={} seed={} rank={} alpha={} dropout={} "
      "params={}",
      train_.size(), validation_.size(), o.batch_size, o.grad_accumulation, o.epochs, o.max_steps, o.lr,
      o.weight_decay, o.beta1, o.beta2, o.eps, o.max_grad_norm, schedule_name(o.schedule), o.warmup_steps,
      o.packing, o.shuffle, o.max_length, o.seed, master_.config().rank, master_.config().alpha,
      master_.config().dropout, master_.flat().numel());
}

void Trainer::save_checkpoint(const std::string& folder) const {
  // The adapter's files (a PEFT adapter folder in itself), the optimizer state and the progress, staged
  // together so the checkpoint appears whole or not at all.
  io::StagedFolder staged(folder);
  master_.save_into(staged.path().string());
  io::save_safetensors(staged.path() / kOptimizerFile, {{"exp_avg", m_.flat()}, {"exp_avg_sq", v_.flat()}});
  nlohmann::json history = nlohmann::json::array();
  for (const StepRecord& r : history_) history.push_back(record_json(r));
  const nlohmann::json state = {{"step", step_},
                                {"optimizer_steps", optimizer_steps_},
                                {"total_steps", total_steps_},
                                {"fingerprint", fingerprint()},
                                {"history", history}};
  io::write_file_atomic(staged.path() / kStateFile, state.dump(1) + "\n");
  staged.commit();
}

void Trainer::resume(const std::string& folder) {
  const fs::path dir(folder);
  const fs::path state_path = dir / kStateFile;
  std::ifstream in(state_path);
  if (!in) fail("train", "{}: not a checkpoint (no {})", folder, kStateFile);
  nlohmann::json state;
  try {
    state = nlohmann::json::parse(in);
    if (state.at("fingerprint").get<std::string>() != fingerprint())
      fail("train",
           "{}: the checkpoint was written with other data or options, so resuming would not continue the "
           "same "
           "run\n  checkpoint: {}\n  now:        {}",
           folder, state.at("fingerprint").get<std::string>(), fingerprint());
    const lora::LoraAdapter saved =
        lora::LoraAdapter::load(folder, model_.config(), master_.device(), master_.dtype());
    const io::SafetensorsFile optimizer = io::SafetensorsFile::open(dir / kOptimizerFile);
    for (const auto& [name, target] :
         {std::pair<const char*, const lora::LoraAdapter*>{"exp_avg", &m_}, {"exp_avg_sq", &v_}}) {
      if (!optimizer.contains(name) || optimizer.info(name).shape != target->flat().shape())
        fail("train", "{}: '{}' is missing or has the wrong shape", (dir / kOptimizerFile).string(), name);
      target->flat().copy_(optimizer.load(name));
    }
    master_.copy_from(saved);
    if (separate_compute_) compute_.copy_from(master_);
    step_ = state.at("step");
    optimizer_steps_ = state.at("optimizer_steps");
    history_.clear();
    for (const auto& r : state.at("history")) history_.push_back(record_from_json(r));
  } catch (const nlohmann::json::exception& e) {
    fail("train", "{}: malformed {}: {}", folder, kStateFile, e.what());
  }
}

}  // namespace wick::train
