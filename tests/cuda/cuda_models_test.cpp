// The tiny golden models on the GPU: decoder logits (full and through the KV cache) and BERT embeddings match
// transformers in f32 and within bf16 precision. Skips cleanly where no CUDA device is present.
#include <gtest/gtest.h>

#include <cmath>

#include <nlohmann/json.hpp>

#include "support/test_util.h"
#include "wick/io/safetensors.h"
#include "wick/models/bert.h"
#include "wick/models/decoder.h"

namespace wick::test {
namespace {

std::string model_dir(const std::string& name) {
  return std::string(WICK_TEST_DATA_DIR) + "/models/" + name;
}

class CudaModels : public ::testing::TestWithParam<DType> {
 protected:
  void SetUp() override {
    if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  }
  double tolerance() const { return GetParam() == DType::f32 ? 1e-4 : 3e-2; }
};

INSTANTIATE_TEST_SUITE_P(Dtypes, CudaModels, ::testing::Values(DType::f32, DType::bf16),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

TEST_P(CudaModels, DecodersMatchTransformers) {
  for (const char* name : {"tiny-qwen2", "tiny-llama"}) {
    SCOPED_TRACE(name);
    const auto golden = io::SafetensorsFile::open(model_dir(name) + "/golden.safetensors");
    const models::Decoder model(models::load_config(model_dir(name)),
                                models::CheckpointSource::open(model_dir(name)), Device::cuda(0), GetParam());
    const Tensor ids = golden.load("input_ids").to(Device::cuda(0));
    const Tensor expected = golden.load("logits", Device::cpu(), DType::f64);
    const Tensor logits = model.forward(ids);
    EXPECT_EQ(logits.device(), Device::cuda(0));
    EXPECT_LE(relative_error(logits, expected), tolerance());
    models::KvCache cache(model.config(), 2, 16, GetParam(), Device::cuda(0));
    model.forward(ids.narrow(1, 0, 6), &cache);
    const Tensor step = model.forward(ids.narrow(1, 6, 3), &cache);
    EXPECT_LE(relative_error(step, expected.narrow(1, 6, 3).contiguous()), tolerance());
  }
}

TEST_P(CudaModels, BertMatchesTransformers) {
  const std::string dir = model_dir("tiny-bert");
  const auto golden = io::SafetensorsFile::open(dir + "/golden.safetensors");
  const models::BertEncoder model(models::load_config(dir), models::CheckpointSource::open(dir),
                                  Device::cuda(0), GetParam());
  const Tensor embeddings =
      model.embed(golden.load("input_ids"), golden.load("attention_mask"), golden.load("token_type_ids"));
  EXPECT_LE(relative_error(embeddings, golden.load("embeddings", Device::cpu(), DType::f64)), tolerance());
}

// all-MiniLM-L6-v2's shape (head_dim 32: the flash kernels' 32-wide tiles) with random weights, padded rows:
// the GPU in f16 against the CPU in f32, per-row cosine. The same shape three times: eager, captured into a
// graph, replayed on other ids (each equal to the CPU on its own inputs).
TEST(CudaBert, MiniLmShapeEagerCapturedAndReplayed) {
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  const nlohmann::json shape = {
      {"model_type", "bert"},           {"vocab_size", 30522},    {"hidden_size", 384},
      {"intermediate_size", 1536},      {"num_hidden_layers", 6}, {"num_attention_heads", 12},
      {"max_position_embeddings", 512}, {"type_vocab_size", 2}};
  const auto config = models::parse_config(shape, "MiniLM shape");
  const models::BertEncoder cpu(config, models::RandomWeights(5), Device::cpu(), DType::f32);
  const models::BertEncoder gpu(config, models::RandomWeights(5), Device::cuda(0), DType::f16);
  Generator gen = fresh_generator();
  for (int call = 0; call < 3; ++call) {
    SCOPED_TRACE(call);
    const Tensor ids = rand_uniform({5, 40}, gen, 0, 30521, DType::f64).to(DType::i64);
    std::vector<int64_t> mask(5 * 40, 1);
    for (int64_t b = 0; b < 5; ++b)
      for (int64_t s = 40 - 7 * b; s < 40; ++s) mask[b * 40 + s] = 0;
    const Tensor m = Tensor::from_vector(mask, {5, 40});
    const Tensor expected = cpu.embed(ids, m).to(DType::f64);
    const Tensor actual = gpu.embed(ids, m).to(Device::cpu()).to(DType::f64);
    ASSERT_EQ(actual.shape(), expected.shape());
    const std::vector<double> e = expected.to_vector<double>(), a = actual.to_vector<double>();
    for (int64_t b = 0; b < 5; ++b) {
      double dot = 0, ne = 0, na = 0;
      for (int64_t j = 0; j < 384; ++j) {
        dot += e[b * 384 + j] * a[b * 384 + j];
        ne += e[b * 384 + j] * e[b * 384 + j];
        na += a[b * 384 + j] * a[b * 384 + j];
      }
      EXPECT_GE(dot / std::sqrt(ne * na), 0.9995) << "row " << b;
    }
  }
}

}  // namespace
}  // namespace wick::test
