// The training loop on the tiny Qwen2 model with its tokenizer: the loss falls, a resumed run reproduces the
// uninterrupted one exactly, non-finite steps stop or are skipped as configured, and checkpoints are whole.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "support/test_util.h"
#include "wick/train/trainer.h"

namespace wick::test {
namespace {
namespace fs = std::filesystem;

const std::string kModel = std::string(WICK_TEST_DATA_DIR) + "/models/tiny-qwen2";

struct Fixture {
  models::ModelConfig config = models::load_config(kModel);
  models::Decoder model{config, models::CheckpointSource::open(kModel), Device::cpu(), DType::f32};
  io::Tokenizer tokenizer = io::Tokenizer::from_file(kModel);
  std::vector<train::Example> examples =
      train::load_examples(std::string(WICK_TEST_DATA_DIR) + "/train/stories.jsonl", tokenizer, {});
};

Fixture& fixture() {
  static Fixture f;
  return f;
}

lora::LoraAdapter fresh_adapter(double dropout = 0.0) {
  lora::LoraConfig c;
  c.rank = 4;
  c.alpha = 8;
  c.dropout = dropout;
  c.targets = std::vector<lora::Projection>(lora::kProjections.begin(), lora::kProjections.end());
  return lora::LoraAdapter::create(fixture().config, c, 17);
}

train::TrainerOptions options() {
  train::TrainerOptions o;
  o.batch_size = 8;
  o.grad_accumulation = 2;
  o.epochs = 2;
  o.lr = 1e-2;
  o.weight_decay = 0.01;
  o.warmup_steps = 2;
  o.schedule = train::Schedule::linear;
  o.max_grad_norm = 1.0;
  o.seed = 5;
  return o;
}

fs::path fresh_folder(const std::string& name) {
  const fs::path dir =
      fs::temp_directory_path() / ("wick-trainer-" + name + "-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  return dir;
}

TEST(Trainer, LossFallsOnTinyStories) {
  std::vector<train::Example> train_set = fixture().examples, validation;
  train::split_validation(train_set, validation, 0.1, 1);
  train::Trainer trainer(fixture().model, fresh_adapter(), train_set, validation, options());
  EXPECT_EQ(trainer.steps_per_epoch(), 7);  // 108 examples → 14 micro-batches of at most 8 → 7 pairs
  const double before = trainer.evaluate();
  while (!trainer.done()) trainer.train_step();
  const double after = trainer.evaluate();
  EXPECT_LT(after, before - 0.5) << "validation loss " << before << " → " << after;
  const auto& h = trainer.history();
  ASSERT_EQ(h.size(), 14u);
  EXPECT_DOUBLE_EQ(h[0].lr, 0.0);  // linear warmup starts at 0
  EXPECT_DOUBLE_EQ(h[1].lr, 0.5e-2);
  EXPECT_GT(h[0].trained_tokens, 0);
  EXPECT_LT(h.back().loss, h.front().loss);
}

TEST(Trainer, ResumedRunReproducesTheUninterruptedOne) {
  auto o = options();
  o.checkpointing = true;
  train::Trainer straight(fixture().model, fresh_adapter(0.1), fixture().examples, {}, o);
  while (!straight.done()) straight.train_step();

  const fs::path dir = fresh_folder("resume");
  {
    train::Trainer first(fixture().model, fresh_adapter(0.1), fixture().examples, {}, o);
    for (int i = 0; i < 5; ++i) first.train_step();
    first.save_checkpoint(dir.string());
  }
  train::Trainer resumed(fixture().model, fresh_adapter(0.1), fixture().examples, {}, o);
  resumed.resume(dir.string());
  EXPECT_EQ(resumed.step(), 5);
  while (!resumed.done()) resumed.train_step();
  ASSERT_EQ(resumed.history().size(), straight.history().size());
  for (size_t i = 0; i < straight.history().size(); ++i)
    EXPECT_EQ(resumed.history()[i].loss, straight.history()[i].loss) << "step " << i + 1;
  EXPECT_EQ(resumed.adapter().flat().to_vector<float>(), straight.adapter().flat().to_vector<float>());

  // Other options: refused, since the run would not continue the same way.
  auto changed = o;
  changed.lr = 2e-2;
  train::Trainer other(fixture().model, fresh_adapter(0.1), fixture().examples, {}, changed);
  expect_error([&] { other.resume(dir.string()); }, {"other data or options", "lr=0.02"});
  expect_error([&] { other.resume((dir / "missing").string()); }, {"not a checkpoint"});
  fs::remove_all(dir);
}

TEST(Trainer, NonFiniteStepsStopOrAreSkipped) {
  auto broken = fresh_adapter();
  broken.find(1, lora::Projection::up)->a.narrow(0, 0, 1).fill_(NAN);
  broken.find(1, lora::Projection::up)->b.fill_(1.0);
  train::Trainer stops(fixture().model, broken, fixture().examples, {}, options());
  expect_error([&] { stops.train_step(); }, {"step 1", "not finite", "stopping"});
  auto o = options();
  o.skip_nonfinite = true;
  train::Trainer skips(fixture().model, broken, fixture().examples, {}, o);
  const auto before = skips.adapter().flat().to_vector<float>();
  const auto r = skips.train_step();
  EXPECT_TRUE(r.skipped);
  EXPECT_EQ(skips.step(), 1);
  const auto after = skips.adapter().flat().to_vector<float>();
  for (size_t i = 0; i < before.size(); ++i)
    if (!std::isnan(before[i])) {
      EXPECT_EQ(after[i], before[i]);
    }
}

TEST(Trainer, CheckpointsAreWholeOrAbsent) {
  train::Trainer trainer(fixture().model, fresh_adapter(), fixture().examples, {}, options());
  trainer.train_step();
  const fs::path blocker = fresh_folder("blocker");
  std::ofstream(blocker) << "a file where a folder is needed";
  expect_error([&] { trainer.save_checkpoint((blocker / "checkpoint-1").string()); }, {"cannot create"});
  EXPECT_FALSE(fs::exists(blocker / "checkpoint-1"));
  fs::remove(blocker);
  const fs::path dir = fresh_folder("whole");
  trainer.save_checkpoint(dir.string());
  for (const char* name :
       {"adapter_config.json", "adapter_model.safetensors", "optimizer.safetensors", "trainer_state.json"})
    EXPECT_TRUE(fs::exists(dir / name)) << name;
  // The checkpoint is itself an adapter folder.
  EXPECT_EQ(lora::LoraAdapter::load(dir.string(), fixture().config).flat().to_vector<float>(),
            trainer.adapter().flat().to_vector<float>());
  fs::remove_all(dir);
}

TEST(Trainer, RefusesBadOptions) {
  auto o = options();
  o.batch_size = 0;
  expect_error([&] { train::Trainer(fixture().model, fresh_adapter(), fixture().examples, {}, o); },
               {"batch size"});
  o = options();
  o.lr = -1;
  expect_error([&] { train::Trainer(fixture().model, fresh_adapter(), fixture().examples, {}, o); },
               {"learning rate"});
  expect_error([&] { train::Trainer(fixture().model, fresh_adapter(), {}, {}, options()); },
               {"no training examples"});
}

}  // namespace
}  // namespace wick::test
