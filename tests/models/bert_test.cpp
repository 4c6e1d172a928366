// The BERT encoder against transformers for a tiny random-weight model (padded batch, token types): last
// hidden states, mean-pooled normalised embeddings and CLS pooling.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <map>

#include "support/test_util.h"
#include "wick/io/safetensors.h"
#include "wick/models/bert.h"

namespace wick::test {
namespace {

const std::string kDir = std::string(WICK_TEST_DATA_DIR) + "/models/tiny-bert";

TEST(BertGolden, HiddenStatesAndEmbeddingsMatchTransformers) {
  const auto g = io::SafetensorsFile::open(kDir + "/golden.safetensors");
  const auto config = models::load_config(kDir);
  for (DType dtype : {DType::f32, DType::f64}) {
    const models::BertEncoder model(config, models::CheckpointSource::open(kDir), Device::cpu(), dtype);
    const Tensor ids = g.load("input_ids"), mask = g.load("attention_mask"), types = g.load("token_type_ids");
    EXPECT_LE(relative_error(model.forward(ids, mask, types),
                             g.load("last_hidden_state", Device::cpu(), DType::f64)),
              1e-5);
    EXPECT_LE(relative_error(model.embed(ids, mask, types), g.load("embeddings", Device::cpu(), DType::f64)),
              1e-5);
    EXPECT_LE(relative_error(model.embed(ids, mask, types, models::Pooling::cls, false),
                             g.load("cls", Device::cpu(), DType::f64)),
              1e-5);
  }
}

// A row with no tokens (all padding) pools to a zero vector, normalised or not, as sentence-transformers
// gives.
TEST(Bert, AllPaddingRowPoolsToZeros) {
  const models::BertEncoder model(models::load_config(kDir), models::CheckpointSource::open(kDir),
                                  Device::cpu(), DType::f32);
  const Tensor ids = Tensor::from_vector<int64_t>({5, 6, 7, 0, 0, 0}, {2, 3});
  const Tensor mask = Tensor::from_vector<int64_t>({1, 1, 1, 0, 0, 0}, {2, 3});
  for (bool normalize : {true, false}) {
    const std::vector<double> e =
        model.embed(ids, mask, Tensor(), models::Pooling::mean, normalize).to(DType::f64).to_vector<double>();
    const int64_t width = model.config().hidden_size;
    double first = 0;
    for (int64_t j = 0; j < width; ++j) {
      first += e[j] * e[j];
      EXPECT_EQ(e[width + j], 0.0) << "column " << j;
    }
    if (normalize) {
      EXPECT_NEAR(first, 1.0, 1e-6);
    }
  }
}

TEST(Bert, BadInputsAreClearErrors) {
  const models::BertEncoder model(models::load_config(kDir), models::CheckpointSource::open(kDir),
                                  Device::cpu(), DType::f32);
  const Tensor ids = Tensor::full({1, 4}, 7, DType::i64);
  expect_error(
      [&] {
        model.forward(ids, Tensor::from_vector<int64_t>({1, 0, 1, 0}, {1, 4}));
      },
      {"[bert]", "not right-padded", "position 2"});
  expect_error(
      [&] {
        model.forward(Tensor::zeros({1, 65}, DType::i64));
      },
      {"[bert]", "65 tokens exceed the model's 64"});
  expect_error(
      [&] {
        model.forward(ids, Tensor::full({1, 3}, 1, DType::i64));
      },
      {"[bert]", "attention_mask must have the shape of ids [1, 4]"});
  expect_error(
      [&] {
        model.embed(Tensor::from_vector<int64_t>({1, 2, 300, 3}, {1, 4}));
      },
      {"[bert]", "token id 300 at row 0, position 2 is outside [0, 300)"});
  expect_error(
      [&] {
        model.embed(ids, Tensor(), Tensor::from_vector<int64_t>({0, 0, 2, 0}, {1, 4}));
      },
      {"[bert]", "token type 2 at row 0, position 2 is outside [0, 2)"});
}

// A checkpoint that does not fit the config (a tensor missing, one of the wrong shape, one stored as
// integers) is refused with the file and tensor named.
TEST(Bert, MismatchedFilesAreClearErrors) {
  const auto dir =
      std::filesystem::temp_directory_path() / ("wick-bert-mismatch-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  std::filesystem::copy_file(kDir + "/config.json", dir / "config.json");
  const auto original = io::SafetensorsFile::open(kDir + "/model.safetensors");
  std::map<std::string, Tensor> tensors;
  for (const auto& name : original.names()) tensors[name] = original.load(name);
  const std::string dense = "encoder.layer.0.intermediate.dense.weight";
  const std::string name_prefix = tensors.count(dense) ? "" : "bert.";
  const auto attempt = [&](std::map<std::string, Tensor> changed, const std::vector<std::string>& fragments) {
    io::save_safetensors(dir / "model.safetensors", changed);
    expect_error(
        [&] {
          models::BertEncoder(models::load_config(dir.string()), models::CheckpointSource::open(dir.string()),
                              Device::cpu(), DType::f32);
        },
        fragments);
  };
  auto missing = tensors;
  missing.erase(name_prefix + dense);
  attempt(missing, {"[model]", "model.safetensors", "missing tensor '" + name_prefix + dense + "'"});
  auto reshaped = tensors;
  const Tensor weight = tensors[name_prefix + dense];
  reshaped[name_prefix + dense] = weight.narrow(0, 0, weight.size(0) - 1).contiguous();
  attempt(reshaped, {"[model]", "tensor '" + name_prefix + dense + "' has shape", "the config needs"});
  auto integers = tensors;
  integers[name_prefix + dense] = weight.to(DType::i32);
  attempt(integers, {"[model]", "model.safetensors", "tensor '" + name_prefix + dense + "' is stored as I32",
                     "expected a floating-point dtype"});
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace wick::test
