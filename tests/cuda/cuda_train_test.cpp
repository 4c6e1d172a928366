// LoRA training on the GPU: the optimizer ops equal the CPU's, the LoRA gradients of the tiny Qwen2 model
// equal the float64 CPU gradients (f32 closely, bf16 within its precision), ten AdamW steps follow PEFT's
// golden losses, and a resumed run repeats the uninterrupted one bit for bit. Skips cleanly without a CUDA
// device.
#include <gtest/gtest.h>

#include <filesystem>

#include "support/test_util.h"
#include "wick/io/safetensors.h"
#include "wick/train/trainer.h"

namespace wick::test {
namespace {
namespace fs = std::filesystem;

const std::string kModel = std::string(WICK_TEST_DATA_DIR) + "/models/tiny-qwen2";
const std::string kPeft = std::string(WICK_TEST_DATA_DIR) + "/peft";

class CudaTrain : public ::testing::Test {
 protected:
  void SetUp() override {
    if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  }
};

TEST_F(CudaTrain, OptimizerOpsEqualTheCpu) {
  Generator gen = fresh_generator();
  const Shape shape{1000, 33};
  const Tensor p = randn(gen, shape), g = randn(gen, shape), m = randn(gen, shape, DType::f32, 0.1);
  const Tensor v = ops::scale(ops::mul(m, m), 2.0);
  ops::AdamWOptions o;
  o.lr = 3e-3;
  o.weight_decay = 0.1;
  o.step = 7;
  o.grad_scale = 0.6;
  std::vector<Tensor> cpu = {p.contiguous(), g, m.contiguous(), v.contiguous()};
  std::vector<Tensor> gpu;
  for (const auto& t : cpu) gpu.push_back(t.to(Device::cuda(0)));
  cpu[0] = p.to(DType::f32).contiguous();
  ops::adamw_step(cpu[0], cpu[1], cpu[2], cpu[3], o);
  ops::adamw_step(gpu[0], gpu[1], gpu[2], gpu[3], o);
  for (int i : {0, 2, 3})
    EXPECT_LE(relative_error(gpu[static_cast<size_t>(i)], cpu[static_cast<size_t>(i)]), 1e-6);
  for (DType dtype : {DType::f32, DType::bf16}) {
    const Tensor x = randn(gen, {4097, 31}, dtype);
    EXPECT_NEAR(ops::sum_of_squares(x.to(Device::cuda(0))).item(), ops::sum_of_squares(x).item(),
                1e-10 * ops::sum_of_squares(x).item());
    EXPECT_EQ(ops::dropout(x.to(Device::cuda(0)), 0.25, 77, 3).to_vector<double>(),
              ops::dropout(x, 0.25, 77, 3).to_vector<double>());
  }
}

lora::LoraAdapter random_adapter(const models::ModelConfig& config, Generator& gen, DType dtype,
                                 Device device, int64_t rank = 4, double dropout = 0.2) {
  lora::LoraConfig c;
  c.rank = rank;
  c.alpha = 2.0 * static_cast<double>(rank);
  c.dropout = dropout;
  c.targets = std::vector<lora::Projection>(lora::kProjections.begin(), lora::kProjections.end());
  auto a = lora::LoraAdapter::create(config, c, gen.seed(), Device::cpu(), DType::f64);
  a.flat().copy_(rand_normal(a.flat().shape(), gen, 0.0, 0.1, DType::f64));
  return a.to(device, dtype);
}

// Rank 4 with dropout keeps every projection apart; without dropout, ranks 8 and 16 pack q/k/v and gate/up
// and take ops::swiglu_lora_backward for the MLP, composed at rank 8 (h kept from the forward), one pass at
// rank 16 in bf16.
class CudaTrainRanks : public CudaTrain, public ::testing::WithParamInterface<std::pair<int64_t, double>> {};

INSTANTIATE_TEST_SUITE_P(Adapters, CudaTrainRanks,
                         ::testing::Values(std::pair<int64_t, double>{4, 0.2},
                                           std::pair<int64_t, double>{8, 0.0},
                                           std::pair<int64_t, double>{16, 0.0}),
                         [](const auto& info) { return "rank" + std::to_string(info.param.first); });

TEST_P(CudaTrainRanks, GradientsEqualTheFloat64Cpu) {
  Generator gen = fresh_generator();
  const auto config = models::load_config(kModel);
  const auto source = models::CheckpointSource::open(kModel);
  const models::Decoder reference(config, source, Device::cpu(), DType::f64);
  const auto adapter64 =
      random_adapter(config, gen, DType::f64, Device::cpu(), GetParam().first, GetParam().second);
  std::vector<int32_t> ids, targets;
  for (double v : rand_uniform({3 * 37}, gen, 0, 320, DType::f64).to_vector<double>())
    ids.push_back(static_cast<int32_t>(v));
  int64_t counted = 0;
  for (size_t i = 0; i < ids.size(); ++i) {
    const bool counts = (i + 1) % 37 != 0 && i % 5 != 0;
    targets.push_back(counts ? ids[i + 1] : train::kIgnoreIndex);
    counted += counts;
  }
  const train::Batch batch{Tensor::from_vector(ids, {3, 37}), Tensor::from_vector(targets, {3, 37}), counted};
  train::ForwardBackwardOptions options;
  options.dropout_seed = 12;
  auto expected = adapter64.to(Device::cpu(), DType::f64);
  const double expected_loss = train::forward_backward(reference, adapter64, batch, expected, options);
  for (DType dtype : {DType::f32, DType::bf16}) {
    SCOPED_TRACE(dtype_name(dtype));
    const models::Decoder model(config, source, Device::cuda(0), dtype);
    const auto adapter = adapter64.to(Device::cuda(0), dtype);
    auto grads = adapter64.to(Device::cuda(0), DType::f32);
    for (bool checkpointing : {false, true}) {
      options.checkpointing = checkpointing;
      const double loss = train::forward_backward(model, adapter, batch, grads, options);
      // bf16 activations through two layers: ~3-5% relative error on these random inputs.
      const double tolerance = dtype == DType::f32 ? 1e-4 : 8e-2;
      EXPECT_NEAR(loss, expected_loss, tolerance * expected_loss);
      EXPECT_LE(relative_error(grads.flat(), expected.flat()), tolerance);
    }
  }
}

TEST_F(CudaTrain, TenStepsFollowPeft) {
  const auto config = models::load_config(kModel);
  const auto golden = io::SafetensorsFile::open(kPeft + "/golden.safetensors");
  std::vector<train::Example> data;
  for (int b = 0; b < 2; ++b) {
    const auto ids = golden.load("input_ids_" + std::to_string(b)).to_vector<int64_t>();
    const auto labels = golden.load("labels_" + std::to_string(b)).to_vector<int64_t>();
    for (int r = 0; r < 2; ++r) {
      train::Example e;
      for (int t = 0; t < 12; ++t) {
        e.ids.push_back(static_cast<int32_t>(ids[static_cast<size_t>(r * 12 + t)]));
        e.learn.push_back(t > 0 && labels[static_cast<size_t>(r * 12 + t)] != -100);
      }
      data.push_back(e);
    }
  }
  train::TrainerOptions o;
  o.batch_size = 2;
  o.shuffle = false;
  o.max_steps = 10;
  o.lr = 1e-2;
  o.weight_decay = 0.01;
  o.schedule = train::Schedule::linear;
  o.warmup_steps = 2;
  const auto losses = golden.load("losses").to_vector<double>();
  for (DType dtype : {DType::f32, DType::bf16}) {
    SCOPED_TRACE(dtype_name(dtype));
    const models::Decoder model(config, models::CheckpointSource::open(kModel), Device::cuda(0), dtype);
    train::Trainer trainer(model, lora::LoraAdapter::load(kPeft + "/initial", config), data, {}, o);
    while (!trainer.done()) trainer.train_step();
    const double tolerance = dtype == DType::f32 ? 1e-4 : 3e-2;
    for (size_t i = 0; i < losses.size(); ++i)
      EXPECT_NEAR(trainer.history()[i].loss, losses[i], tolerance * losses[i]) << "step " << i + 1;
  }
}

TEST_F(CudaTrain, ResumedRunRepeatsTheUninterruptedOneExactly) {
  const auto config = models::load_config(kModel);
  const models::Decoder model(config, models::CheckpointSource::open(kModel), Device::cuda(0), DType::bf16);
  const auto tokenizer = io::Tokenizer::from_file(kModel);
  const auto examples =
      train::load_examples(std::string(WICK_TEST_DATA_DIR) + "/train/stories.jsonl", tokenizer, {});
  Generator gen(8);
  const auto adapter = random_adapter(config, gen, DType::f32, Device::cpu());
  train::TrainerOptions o;
  o.batch_size = 8;
  o.epochs = 1;
  o.lr = 5e-3;
  train::Trainer straight(model, adapter, examples, {}, o);
  while (!straight.done()) straight.train_step();
  const fs::path dir = fs::temp_directory_path() / ("wick-cuda-resume-" + std::to_string(::getpid()));
  {
    train::Trainer first(model, adapter, examples, {}, o);
    for (int i = 0; i < 6; ++i) first.train_step();
    first.save_checkpoint(dir.string());
  }
  train::Trainer resumed(model, adapter, examples, {}, o);
  resumed.resume(dir.string());
  while (!resumed.done()) resumed.train_step();
  for (size_t i = 0; i < straight.history().size(); ++i)
    EXPECT_EQ(resumed.history()[i].loss, straight.history()[i].loss) << "step " << i + 1;
  EXPECT_EQ(resumed.adapter().flat().to_vector<float>(), straight.adapter().flat().to_vector<float>());
  fs::remove_all(dir);
}

}  // namespace
}  // namespace wick::test
