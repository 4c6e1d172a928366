// The tiny golden models on the GPU: decoder logits (full and through the KV cache) and BERT embeddings match
// transformers in f32 and within bf16 precision. Skips cleanly where no CUDA device is present.
#include <gtest/gtest.h>

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

}  // namespace
}  // namespace wick::test
