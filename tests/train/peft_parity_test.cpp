// Parity with PEFT on the tiny Qwen2 model, against golden files that tests/train/make_peft_golden.py writes
// with PEFT in float64: the first step's LoRA gradients, the losses / gradient norms / learning rates of 10
// AdamW steps and the adapter they end with; logits of an adapter PEFT saved, and PEFT's logits of an adapter
// wick trained (so each side reads the other's files as the other means them).
#include <gtest/gtest.h>

#include "support/test_util.h"
#include "wick/io/safetensors.h"
#include "wick/train/trainer.h"

namespace wick::test {
namespace {

const std::string kModel = std::string(WICK_TEST_DATA_DIR) + "/models/tiny-qwen2";
const std::string kPeft = std::string(WICK_TEST_DATA_DIR) + "/peft";

struct Golden {
  models::ModelConfig config = models::load_config(kModel);
  io::SafetensorsFile file = io::SafetensorsFile::open(kPeft + "/golden.safetensors");
  std::vector<double> get(const std::string& name) const { return file.load(name).to_vector<double>(); }
};

const Golden& golden() {
  static const Golden g;
  return g;
}

// The golden batch's rows as examples: learn[t] = (labels[t] != -100), the causal-LM shift.
std::vector<train::Example> examples(int64_t batch) {
  const auto ids = golden().file.load(fmt::format("input_ids_{}", batch)).to_vector<int64_t>();
  const auto labels = golden().file.load(fmt::format("labels_{}", batch)).to_vector<int64_t>();
  const int64_t rows = 2, width = static_cast<int64_t>(ids.size()) / rows;
  std::vector<train::Example> out;
  for (int64_t r = 0; r < rows; ++r) {
    train::Example e;
    for (int64_t t = 0; t < width; ++t) {
      e.ids.push_back(static_cast<int32_t>(ids[static_cast<size_t>(r * width + t)]));
      e.learn.push_back(t > 0 && labels[static_cast<size_t>(r * width + t)] != -100);
    }
    out.push_back(std::move(e));
  }
  return out;
}

train::Batch batch_of(int64_t batch) {
  train::BatchPlan plan;
  plan.batch_size = 2;
  plan.shuffle = false;
  return train::epoch_batches(examples(batch), plan, 0).at(0);
}

models::Decoder model(DType dtype) {
  return models::Decoder(golden().config, models::CheckpointSource::open(kModel), Device::cpu(), dtype);
}

TEST(PeftParity, FirstStepGradientsMatch) {
  const auto m = model(DType::f64);
  const auto initial =
      lora::LoraAdapter::load(kPeft + "/initial", golden().config, Device::cpu(), DType::f64);
  EXPECT_EQ(initial.config().rank, 4);
  EXPECT_DOUBLE_EQ(initial.config().scale(), 2.0);
  EXPECT_EQ(initial.config().targets.size(), 7u);
  auto grads = initial.to(Device::cpu(), DType::f64);
  grads.flat().fill_(0.0);
  train::forward_backward(m, initial, batch_of(0), grads);
  int64_t compared = 0;
  for (const auto& [name, grad] : grads.named_tensors()) {
    // transformers computes the RoPE angles in f32 even for an f64 model, which bounds the agreement.
    EXPECT_LE(rel_error(grad, golden().get("grad." + name)), 2e-6) << name;
    ++compared;
  }
  EXPECT_EQ(compared, 2 * 7 * 2);
}

// Losses agree to `tolerance`; gradient norms and weights to `drift`: Adam divides by √v, so in elements
// whose gradients are nearly zero it turns rounding-level differences into visible ones over the steps.
void expect_ten_steps_match(DType dtype, double tolerance, double drift) {
  const auto m = model(dtype);
  const auto initial = lora::LoraAdapter::load(kPeft + "/initial", golden().config);
  auto data = examples(0);
  for (auto& e : examples(1)) data.push_back(std::move(e));
  train::TrainerOptions o;
  o.batch_size = 2;
  o.shuffle = false;
  o.max_steps = 10;
  o.lr = 1e-2;
  o.weight_decay = 0.01;
  o.schedule = train::Schedule::linear;
  o.warmup_steps = 2;
  o.max_grad_norm = 1.0;
  train::Trainer trainer(m, initial, data, {}, o);
  while (!trainer.done()) trainer.train_step();
  const auto losses = golden().get("losses"), norms = golden().get("grad_norms"), lrs = golden().get("lrs");
  ASSERT_EQ(trainer.history().size(), 10u);
  for (size_t i = 0; i < 10; ++i) {
    const auto& r = trainer.history()[i];
    EXPECT_NEAR(r.loss, losses[i], tolerance * losses[i]) << "step " << i + 1;
    EXPECT_NEAR(r.grad_norm, norms[i], drift * norms[i]) << "step " << i + 1;
    EXPECT_NEAR(r.lr, lrs[i], 1e-15) << "step " << i + 1;
  }
  const auto trained =
      lora::LoraAdapter::load(kPeft + "/trained", golden().config, Device::cpu(), DType::f64);
  EXPECT_LE(relative_error(trainer.adapter().flat(), trained.flat()), drift);
}

TEST(PeftParity, TenAdamWStepsMatchInFloat64) {
  expect_ten_steps_match(DType::f64, 1e-6, 2e-5);  // bounded by the reference's f32 RoPE angles
}

TEST(PeftParity, TenAdamWStepsMatchInFloat32) {
  expect_ten_steps_match(DType::f32, 2e-5, 1e-3);
}

TEST(PeftParity, AdapterSavedByPeftGivesPeftsLogits) {
  const auto m = model(DType::f64);
  const auto trained =
      lora::LoraAdapter::load(kPeft + "/trained", golden().config, Device::cpu(), DType::f64);
  const Tensor logits = m.forward(golden().file.load("input_ids_0"), nullptr, &trained);
  EXPECT_LE(relative_error(logits, golden().file.load("trained_logits")), 1e-6);
}

TEST(PeftParity, AdapterTrainedByWickGivesTheSameLogitsInPeft) {
  const auto m = model(DType::f64);
  const auto adapter =
      lora::LoraAdapter::load(kPeft + "/wick-trained", golden().config, Device::cpu(), DType::f64);
  const Tensor logits = m.forward(golden().file.load("input_ids_0"), nullptr, &adapter);
  const Tensor peft = golden().file.load("wick_trained_logits");
  EXPECT_LE(relative_error(logits, peft), 1e-6);
  // The adapter changed the model: PEFT applied it, it is not a no-op.
  EXPECT_GT(relative_error(m.forward(golden().file.load("input_ids_0")), peft), 1e-3);
}

}  // namespace
}  // namespace wick::test
