// LoRA adapters: PEFT's initialisation, the adapter folder written and read back, clear refusals of folders
// that do not fit the model or use options wick does not implement, and merging equal to applying unmerged.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "support/test_util.h"
#include "wick/io/safetensors.h"
#include "wick/lora/adapter.h"
#include "wick/models/decoder.h"

namespace wick::test {
namespace {
namespace fs = std::filesystem;

std::string tiny_qwen2() {
  return std::string(WICK_TEST_DATA_DIR) + "/models/tiny-qwen2";
}

fs::path fresh_folder(const std::string& name) {
  const fs::path dir =
      fs::temp_directory_path() / ("wick-lora-test-" + name + "-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  return dir;
}

lora::LoraConfig config_for(std::vector<lora::Projection> targets, int64_t rank = 4) {
  lora::LoraConfig c;
  c.rank = rank;
  c.alpha = 8;
  c.targets = std::move(targets);
  return c;
}

TEST(LoraAdapter, InitialisesAsPeftDoes) {
  const auto model = models::load_config(tiny_qwen2());
  Generator gen = fresh_generator();
  const auto adapter =
      lora::LoraAdapter::create(model, config_for({lora::Projection::q, lora::Projection::down}), gen.seed());
  const auto* q = adapter.find(0, lora::Projection::q);
  const auto* down = adapter.find(1, lora::Projection::down);
  ASSERT_NE(q, nullptr);
  ASSERT_NE(down, nullptr);
  EXPECT_EQ(adapter.find(0, lora::Projection::k), nullptr);
  EXPECT_EQ(q->a.shape(), (Shape{4, 64}));
  EXPECT_EQ(down->a.shape(), (Shape{4, 160}));
  EXPECT_EQ(down->b.shape(), (Shape{64, 4}));
  for (const auto* pair : {q, down}) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(pair->a.size(1)));
    double largest = 0;
    for (double v : values(pair->a)) largest = std::max(largest, std::abs(v));
    EXPECT_LE(largest, bound);
    EXPECT_GT(largest, 0.8 * bound);  // uniform over the whole range
    for (double v : values(pair->b)) EXPECT_EQ(v, 0.0);
  }
  // Gaussian A: standard deviation 1/r. Over the 4608 values of three projections in two layers the sample
  // deviation's standard error is 0.125/sqrt(2·4608) ≈ 0.0013; the bound is more than seven of them.
  auto gaussian = config_for({lora::Projection::gate, lora::Projection::up, lora::Projection::down}, 8);
  gaussian.init = lora::InitMethod::gaussian;
  const auto g = lora::LoraAdapter::create(model, gaussian, gen.seed());
  double sum2 = 0;
  int64_t count = 0;
  for (int64_t layer = 0; layer < 2; ++layer)
    for (auto p : {lora::Projection::gate, lora::Projection::up, lora::Projection::down})
      for (double v : values(g.find(layer, p)->a)) {
        sum2 += v * v;
        ++count;
      }
  EXPECT_EQ(count, 4608);
  EXPECT_NEAR(std::sqrt(sum2 / static_cast<double>(count)), 1.0 / 8, 0.01);
  EXPECT_EQ(config_for({}, 4).targets.size(), 0u);
  expect_error([&] { lora::LoraAdapter::create(model, config_for({}), 1); }, {"no target modules"});
  expect_error([&] { lora::LoraAdapter::create(model, config_for({lora::Projection::q}, 0), 1); },
               {"rank must be >= 1"});
  expect_error([] { lora::parse_target_modules({"q_proj", "fc1"}); }, {"'fc1' does not exist", "all-linear"});
  EXPECT_EQ(lora::parse_target_modules({"all-linear"}).size(), 7u);
  EXPECT_EQ(lora::parse_target_modules({"self_attn.v_proj", "v_proj"}),
            std::vector<lora::Projection>{lora::Projection::v});
}

TEST(LoraAdapter, SavesAFolderPeftReadsAndLoadsItBack) {
  const auto model = models::load_config(tiny_qwen2());
  Generator gen = fresh_generator();
  auto config = config_for({lora::Projection::k, lora::Projection::o, lora::Projection::gate}, 3);
  config.alpha = 6.5;
  config.use_rslora = true;
  config.dropout = 0.05;
  auto adapter = lora::LoraAdapter::create(model, config, gen.seed());
  adapter.flat().copy_(rand_normal(adapter.flat().shape(), gen));
  const fs::path dir = fresh_folder("roundtrip");
  adapter.save(dir.string());
  const auto json = nlohmann::json::parse(std::ifstream(dir / "adapter_config.json"));
  EXPECT_EQ(json["peft_type"], "LORA");
  EXPECT_EQ(json["task_type"], "CAUSAL_LM");
  EXPECT_EQ(json["r"], 3);
  EXPECT_EQ(json["lora_alpha"], 6.5);
  EXPECT_EQ(json["use_rslora"], true);
  EXPECT_EQ(json["target_modules"], (nlohmann::json{"k_proj", "o_proj", "gate_proj"}));
  const auto file = io::SafetensorsFile::open(dir / "adapter_model.safetensors");
  EXPECT_EQ(file.names().size(), 2u * 3u * 2u);
  EXPECT_EQ(file.info("base_model.model.model.layers.1.self_attn.k_proj.lora_A.weight").shape,
            (Shape{3, 64}));
  EXPECT_EQ(file.info("base_model.model.model.layers.0.mlp.gate_proj.lora_B.weight").shape, (Shape{160, 3}));

  const auto loaded = lora::LoraAdapter::load(dir.string(), model);
  EXPECT_EQ(values(loaded.flat()), values(adapter.flat()));
  EXPECT_EQ(loaded.config().rank, 3);
  EXPECT_DOUBLE_EQ(loaded.config().scale(), 6.5 / std::sqrt(3.0));
  EXPECT_EQ(loaded.config().targets, config.targets);
  // Saving again over the folder replaces it whole, leaving no staging folders behind.
  adapter.save(dir.string());
  int64_t entries = 0;
  for (const auto& e : fs::directory_iterator(dir.parent_path()))
    entries += e.path().filename().string().find("wick-lora-test-roundtrip") != std::string::npos;
  EXPECT_EQ(entries, 1);
  fs::remove_all(dir);
}

TEST(LoraAdapter, RefusesFoldersThatDoNotFit) {
  const auto model = models::load_config(tiny_qwen2());
  const auto adapter =
      lora::LoraAdapter::create(model, config_for({lora::Projection::q, lora::Projection::v}), 5);
  const fs::path dir = fresh_folder("refusals");
  adapter.save(dir.string());
  const std::string config_path = (dir / "adapter_config.json").string();
  const auto original = nlohmann::json::parse(std::ifstream(config_path));
  auto rewrite = [&](const std::function<void(nlohmann::json&)>& edit) {
    nlohmann::json j = original;
    edit(j);
    std::ofstream(config_path) << j.dump();
  };
  rewrite([](nlohmann::json& j) { j["r"] = 5; });
  expect_error([&] { lora::LoraAdapter::load(dir.string(), model); },
               {"layers.0.self_attn.q_proj.lora_A.weight", "shape [4, 64]", "needs [5, 64]"});
  rewrite([](nlohmann::json& j) { j["target_modules"] = {"q_proj", "v_proj", "k_proj"}; });
  expect_error([&] { lora::LoraAdapter::load(dir.string(), model); }, {"k_proj.lora_A.weight", "is missing"});
  rewrite([](nlohmann::json& j) { j["target_modules"] = {"q_proj"}; });
  expect_error([&] { lora::LoraAdapter::load(dir.string(), model); }, {"v_proj", "does not belong"});
  rewrite([](nlohmann::json& j) { j["use_dora"] = true; });
  expect_error([&] { lora::LoraAdapter::load(dir.string(), model); },
               {"adapter_config.json", "'use_dora'", "not supported"});
  rewrite([](nlohmann::json& j) { j["peft_type"] = "IA3"; });
  expect_error([&] { lora::LoraAdapter::load(dir.string(), model); }, {"LORA adapters only"});
  rewrite([](nlohmann::json& j) { j["target_modules"] = {"lm_head"}; });
  expect_error([&] { lora::LoraAdapter::load(dir.string(), model); }, {"'lm_head' does not exist"});
  rewrite([](nlohmann::json& j) { j.erase("r"); });
  expect_error([&] { lora::LoraAdapter::load(dir.string(), model); }, {"missing the field 'r'"});
  std::ofstream(config_path) << "{ not json";
  expect_error([&] { lora::LoraAdapter::load(dir.string(), model); },
               {"adapter_config.json", "not valid JSON"});
  // Another base model: the same folder against a model with another hidden size.
  auto other = model;
  other.hidden_size = 96;
  other.head_dim = 24;
  rewrite([](nlohmann::json&) {});
  expect_error([&] { lora::LoraAdapter::load(dir.string(), other); }, {"different base model"});
  fs::remove(dir / "adapter_model.safetensors");
  expect_error([&] { lora::LoraAdapter::load(dir.string(), model); }, {"missing adapter_model.safetensors"});
  expect_error([&] { lora::LoraAdapter::load((dir / "nope").string(), model); }, {"not an adapter folder"});
  fs::remove_all(dir);
}

// PEFT's target_modules may be one regular expression over whole module names: it loads when it selects
// projections in every layer, and is refused by name when it selects some layers only or does not parse.
TEST(LoraAdapter, TargetModulesAsAPattern) {
  const auto model = models::load_config(tiny_qwen2());
  Generator gen = fresh_generator();
  auto adapter = lora::LoraAdapter::create(model, config_for({lora::Projection::q, lora::Projection::v}), 5);
  adapter.flat().copy_(rand_normal(adapter.flat().shape(), gen));
  const fs::path dir = fresh_folder("pattern");
  adapter.save(dir.string());
  const std::string config_path = (dir / "adapter_config.json").string();
  const auto original = nlohmann::json::parse(std::ifstream(config_path));
  auto with_targets = [&](const std::string& pattern) {
    nlohmann::json j = original;
    j["target_modules"] = pattern;
    std::ofstream(config_path) << j.dump();
  };
  with_targets(R"(.*\.(q_proj|v_proj))");
  const auto loaded = lora::LoraAdapter::load(dir.string(), model);
  EXPECT_EQ(loaded.config().targets,
            (std::vector<lora::Projection>{lora::Projection::q, lora::Projection::v}));
  EXPECT_EQ(values(loaded.flat()), values(adapter.flat()));
  with_targets(R"(model\.layers\.0\.self_attn\.(q|v)_proj)");
  expect_error([&] { lora::LoraAdapter::load(dir.string(), model); }, {"selects q_proj in 1 of 2 layers"});
  with_targets("(q_proj");
  expect_error([&] { lora::LoraAdapter::load(dir.string(), model); }, {"not a valid regular expression"});
  with_targets(".*embed_tokens");
  expect_error([&] { lora::LoraAdapter::load(dir.string(), model); },
               {"matches none of the model's projections"});
  fs::remove_all(dir);
}

TEST(LoraAdapter, MergedWeightsGiveTheUnmergedLogits) {
  const auto config = models::load_config(tiny_qwen2());
  models::Decoder model(config, models::CheckpointSource::open(tiny_qwen2()), Device::cpu(), DType::f64);
  Generator gen = fresh_generator();
  auto adapter = lora::LoraAdapter::create(
      config, config_for(std::vector<lora::Projection>(lora::kProjections.begin(), lora::kProjections.end())),
      gen.seed(), Device::cpu(), DType::f64);
  adapter.flat().copy_(rand_normal(adapter.flat().shape(), gen, 0.0, 0.05, DType::f64));
  const Tensor ids = Tensor::from_vector(std::vector<int32_t>{3, 17, 250, 4, 99, 7}, {2, 3});
  const Tensor base = model.forward(ids);
  const Tensor unmerged = model.forward(ids, nullptr, &adapter);
  EXPECT_GT(relative_error(unmerged, base.to(DType::f64)), 1e-3);
  const Tensor q_before = model.layer(1).q.contiguous().to(DType::f64);
  model.merge_adapter(adapter);
  EXPECT_LE(relative_error(model.forward(ids), unmerged.to(DType::f64)), 1e-6);
  model.unmerge_adapter(adapter);
  EXPECT_LE(relative_error(model.layer(1).q, q_before), 1e-14);
  EXPECT_LE(relative_error(model.forward(ids), base.to(DType::f64)), 1e-6);
  const auto f32 = adapter.to(Device::cpu(), DType::f32);
  expect_error([&] { model.forward(ids, nullptr, &f32); }, {"adapter is f32", "computes in f64"});
}

// Several adapters held at once over one loaded model and switched per call: each call's logits are those of
// the base weights with that adapter merged, and switching back gives the first adapter's logits again.
TEST(LoraAdapter, SeveralAdaptersSwitchedPerCall) {
  const auto config = models::load_config(tiny_qwen2());
  models::Decoder model(config, models::CheckpointSource::open(tiny_qwen2()), Device::cpu(), DType::f64);
  Generator gen = fresh_generator();
  auto first = lora::LoraAdapter::create(config, config_for({lora::Projection::q, lora::Projection::down}),
                                         gen.seed(), Device::cpu(), DType::f64);
  auto second = lora::LoraAdapter::create(config, config_for({lora::Projection::v, lora::Projection::up}, 2),
                                          gen.seed() + 1, Device::cpu(), DType::f64);
  first.flat().copy_(rand_normal(first.flat().shape(), gen, 0.0, 0.05, DType::f64));
  second.flat().copy_(rand_normal(second.flat().shape(), gen, 0.0, 0.05, DType::f64));
  const Tensor ids = Tensor::from_vector(std::vector<int32_t>{3, 17, 250, 4, 99, 7}, {2, 3});
  const Tensor with_first = model.forward(ids, nullptr, &first).to(DType::f64);
  const Tensor with_second = model.forward(ids, nullptr, &second).to(DType::f64);
  EXPECT_GT(relative_error(with_first, with_second), 1e-3);
  EXPECT_EQ(values(model.forward(ids, nullptr, &first)), values(with_first));
  EXPECT_GT(relative_error(model.forward(ids).to(DType::f64), with_first), 1e-3);
  for (const auto* adapter : {&first, &second}) {
    model.merge_adapter(*adapter);
    EXPECT_LE(relative_error(model.forward(ids).to(DType::f64), adapter == &first ? with_first : with_second),
              1e-6);
    model.unmerge_adapter(*adapter);
  }
}

}  // namespace
}  // namespace wick::test
