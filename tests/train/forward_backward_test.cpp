// LoRA training's loss and gradients on the tiny Qwen2 model (and the gradients on the tiny Llama): the loss
// equals the decoder's logits through cross-entropy, the LoRA gradients equal central finite differences in
// float64 (with and without dropout), checkpointing and accumulation change nothing they should not, and bad
// batches are refused.
#include <gtest/gtest.h>

#include <cmath>

#include "support/test_util.h"
#include "wick/lora/adapter.h"
#include "wick/models/decoder.h"
#include "wick/train/forward_backward.h"

namespace wick::test {
namespace {

// "tiny-qwen2" (q/k/v biases, tied embeddings, 2 KV heads) or "tiny-llama" (no biases, its own lm_head).
models::Decoder load_tiny(DType dtype, const std::string& name = "tiny-qwen2") {
  const std::string dir = std::string(WICK_TEST_DATA_DIR) + "/models/" + name;
  return models::Decoder(models::load_config(dir), models::CheckpointSource::open(dir), Device::cpu(), dtype);
}

lora::LoraConfig all_projections(int64_t rank, double dropout = 0.0) {
  lora::LoraConfig c;
  c.rank = rank;
  c.alpha = 2.0 * static_cast<double>(rank);
  c.dropout = dropout;
  c.targets = std::vector<lora::Projection>(lora::kProjections.begin(), lora::kProjections.end());
  return c;
}

// An adapter with non-zero B, so that every gradient is exercised.
lora::LoraAdapter random_adapter(const models::Decoder& model, const lora::LoraConfig& config,
                                 Generator& gen) {
  lora::LoraAdapter adapter =
      lora::LoraAdapter::create(model.config(), config, gen.seed(), Device::cpu(), model.dtype());
  adapter.flat().copy_(rand_normal(adapter.flat().shape(), gen, 0.0, 0.1, model.dtype()));
  return adapter;
}

train::Batch random_batch(Generator& gen, int64_t batch, int64_t seq, int64_t vocab) {
  const auto ids =
      rand_uniform({batch, seq}, gen, 0, static_cast<double>(vocab), DType::f64).to_vector<double>();
  const auto keep = rand_uniform({batch, seq}, gen, 0, 1, DType::f64).to_vector<double>();
  std::vector<int32_t> id_values, target_values;
  int64_t counted = 0;
  for (size_t i = 0; i < ids.size(); ++i) id_values.push_back(static_cast<int32_t>(ids[i]));
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t t = 0; t < seq; ++t) {
      const size_t i = static_cast<size_t>(b * seq + t);
      // Each row's first position always counts, so no batch is left without targets.
      const bool counts = t + 1 < seq && (t == 0 || keep[i] > 0.25);
      target_values.push_back(counts ? id_values[i + 1] : train::kIgnoreIndex);
      counted += counts;
    }
  return {Tensor::from_vector(id_values, {batch, seq}), Tensor::from_vector(target_values, {batch, seq}),
          counted};
}

lora::LoraAdapter zero_grads(const lora::LoraAdapter& adapter) {
  const DType dtype = adapter.dtype() == DType::f64 ? DType::f64 : DType::f32;
  lora::LoraAdapter grads = adapter.to(adapter.device(), dtype);
  grads.flat().fill_(0.0);
  return grads;
}

TEST(LoraTraining, LossEqualsCrossEntropyOfTheAdaptedLogits) {
  Generator gen = fresh_generator();
  const auto model = load_tiny(DType::f64);
  const auto adapter = random_adapter(model, all_projections(4), gen);
  const auto batch = random_batch(gen, 2, 9, model.config().vocab_size);
  const Tensor logits = model.forward(batch.ids, nullptr, &adapter);
  const double expected =
      ops::cross_entropy(logits.view({18, model.config().vocab_size}), batch.targets.view({18})).item();
  // The decoder's logits come back as f32: agreement to f32 rounding.
  EXPECT_NEAR(train::evaluate_loss(model, &adapter, batch), expected, 1e-6 * expected);
  auto grads = zero_grads(adapter);
  EXPECT_NEAR(train::forward_backward(model, adapter, batch, grads), expected, 1e-6 * expected);
  // Without the adapter the loss differs (the adapter is not a no-op here).
  EXPECT_GT(std::abs(train::evaluate_loss(model, nullptr, batch) - expected), 1e-6);
}

void expect_gradients_match_finite_differences(double dropout, const std::string& model_name = "tiny-qwen2",
                                               int64_t rank = 3) {
  Generator gen = fresh_generator();
  SCOPED_TRACE("seed " + std::to_string(gen.seed()) + ", dropout " + std::to_string(dropout) + ", " +
               model_name + ", rank " + std::to_string(rank));
  const auto model = load_tiny(DType::f64, model_name);
  auto adapter = random_adapter(model, all_projections(rank, dropout), gen);
  const auto batch = random_batch(gen, 2, 7, model.config().vocab_size);
  train::ForwardBackwardOptions options;
  options.dropout_seed = 99;
  options.dropout_draw_base = 5;
  auto grads = zero_grads(adapter);
  train::forward_backward(model, adapter, batch, grads, options);
  const auto analytic = grads.flat().to_vector<double>();
  auto scratch = zero_grads(adapter);
  auto loss_at = [&](int64_t index, double delta) {
    const Tensor element = adapter.flat().narrow(0, index, 1);
    const double original = element.item();
    element.fill_(original + delta);
    const double loss = train::forward_backward(model, adapter, batch, scratch, options);
    element.fill_(original);
    return loss;
  };
  // A spread of parameters across both layers and all projections. Central differences with h = 1e-5 on a
  // loss near 6 carry ~1e-10 of rounding and truncation, hence the 1e-4 floor and the 1e-5 bound (a wrong
  // gradient is off by order 1).
  const int64_t n = adapter.flat().numel();
  double worst = 0;
  for (int64_t j = 0; j < 48; ++j) {
    const int64_t index = (j * 7919 + 13) % n;
    const double h = 1e-5;
    const double numeric = (loss_at(index, h) - loss_at(index, -h)) / (2 * h);
    const double error = std::abs(numeric - analytic[static_cast<size_t>(index)]) /
                         std::max(1e-4, std::abs(numeric) + std::abs(analytic[static_cast<size_t>(index)]));
    worst = std::max(worst, error);
    EXPECT_LT(error, 1e-5) << "parameter " << index << ": numeric " << numeric << ", analytic "
                           << analytic[static_cast<size_t>(index)];
  }
  ::testing::Test::RecordProperty("worst_relative_error", std::to_string(worst));
}

TEST(LoraTraining, GradientsMatchFiniteDifferences) {
  expect_gradients_match_finite_differences(0.0);
}

TEST(LoraTraining, GradientsMatchFiniteDifferencesWithDropout) {
  expect_gradients_match_finite_differences(0.3);
}

TEST(LoraTraining, GradientsMatchFiniteDifferencesOnLlama) {
  expect_gradients_match_finite_differences(0.1, "tiny-llama");
}

// At rank 8 the q/k/v and gate/up projections run as one product each, their LoRA terms folded into its
// inner dimension (rank 3 above keeps them apart).
TEST(LoraTraining, GradientsMatchFiniteDifferencesWithPackedProjections) {
  expect_gradients_match_finite_differences(0.0, "tiny-qwen2", 8);
  expect_gradients_match_finite_differences(0.3, "tiny-llama", 8);
}

void expect_checkpointing_and_accumulation_keep_the_gradients(int64_t rank, double dropout) {
  Generator gen = fresh_generator();
  SCOPED_TRACE("rank " + std::to_string(rank) + ", dropout " + std::to_string(dropout));
  const auto model = load_tiny(DType::f32);
  const auto adapter = random_adapter(model, all_projections(rank, dropout), gen);
  const auto a = random_batch(gen, 2, 11, model.config().vocab_size);
  const auto b = random_batch(gen, 3, 5, model.config().vocab_size);
  train::ForwardBackwardOptions plain;
  plain.dropout_seed = 3;
  auto g1 = zero_grads(adapter), g2 = zero_grads(adapter);
  const double loss1 = train::forward_backward(model, adapter, a, g1, plain);
  train::ForwardBackwardOptions checkpointed = plain;
  checkpointed.checkpointing = true;
  const double loss2 = train::forward_backward(model, adapter, a, g2, checkpointed);
  EXPECT_EQ(loss1, loss2);
  EXPECT_EQ(g1.flat().to_vector<float>(), g2.flat().to_vector<float>());
  // Nor does keeping the packed weights across calls, as the trainer does (the backward then reads the
  // matrices its forward wrote), with or without checkpointing.
  train::PackedWeights kept;
  for (bool checkpointing : {false, true, false}) {
    train::ForwardBackwardOptions cached = plain;
    cached.packed_weights = &kept;
    cached.checkpointing = checkpointing;
    auto g = zero_grads(adapter);
    EXPECT_EQ(train::forward_backward(model, adapter, a, g, cached), loss1);
    EXPECT_EQ(g.flat().to_vector<float>(), g1.flat().to_vector<float>());
  }

  // 0.25·grad(a) + 0.75·grad(b) accumulated equals the weighted sum of separate gradients.
  auto gb = zero_grads(adapter), acc = zero_grads(adapter);
  train::forward_backward(model, adapter, b, gb, plain);
  train::ForwardBackwardOptions first = plain, second = plain;
  first.loss_weight = 0.25;
  second.loss_weight = 0.75;
  second.accumulate = true;
  train::forward_backward(model, adapter, a, acc, first);
  train::forward_backward(model, adapter, b, acc, second);
  const auto ga = g1.flat().to_vector<double>(), gbv = gb.flat().to_vector<double>();
  std::vector<double> expected(ga.size());
  for (size_t i = 0; i < ga.size(); ++i) expected[i] = 0.25 * ga[i] + 0.75 * gbv[i];
  EXPECT_LE(rel_error(acc.flat(), expected), 1e-5);
}

TEST(LoraTraining, CheckpointingAndAccumulationKeepTheGradients) {
  expect_checkpointing_and_accumulation_keep_the_gradients(4, 0.1);
  expect_checkpointing_and_accumulation_keep_the_gradients(8, 0.0);  // the packed projections
}

TEST(LoraTraining, RefusesBadBatchesAndBuffers) {
  Generator gen = fresh_generator();
  const auto model = load_tiny(DType::f32);
  const auto adapter = random_adapter(model, all_projections(2), gen);
  auto batch = random_batch(gen, 1, 4, model.config().vocab_size);
  auto grads = zero_grads(adapter);
  train::Batch empty = batch;
  empty.targets = Tensor::full({1, 4}, train::kIgnoreIndex, DType::i32);
  empty.counted = 0;
  expect_error([&] { train::forward_backward(model, adapter, empty, grads); }, {"no target tokens"});
  auto wrong = adapter.to(Device::cpu(), DType::f64);
  expect_error([&] { train::forward_backward(model, adapter, batch, wrong); }, {"gradient buffer"});
  const auto bf16 = adapter.to(Device::cpu(), DType::bf16);
  expect_error([&] { train::forward_backward(model, bf16, batch, grads); }, {"adapter is bf16", "to()"});
  train::Batch long_batch = random_batch(gen, 1, 129, model.config().vocab_size);
  expect_error([&] { train::forward_backward(model, adapter, long_batch, grads); },
               {"exceed", "context of 128"});
}

}  // namespace
}  // namespace wick::test
