// Generation on the GPU: greedy decoding replayed from a captured CUDA graph gives transformers' greedy ids
// on the tiny golden models and the eager path's ids, alone and batched. Skips cleanly without a CUDA device.
#include <gtest/gtest.h>

#include "support/test_util.h"
#include "wick/generate/generator.h"
#include "wick/io/safetensors.h"

namespace wick::test {
namespace {

std::string model_dir(const std::string& name) {
  return std::string(WICK_TEST_DATA_DIR) + "/models/" + name;
}

TEST(CudaGenerate, GraphDecodingEqualsTransformersAndTheEagerPath) {
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  for (const char* name : {"tiny-qwen2", "tiny-llama"}) {
    SCOPED_TRACE(name);
    const models::Decoder model(models::load_config(model_dir(name)),
                                models::CheckpointSource::open(model_dir(name)), Device::cuda(0), DType::f32);
    const auto golden = io::SafetensorsFile::open(model_dir(name) + "/golden.safetensors");
    const auto prompt64 = golden.load("greedy_prompt").to_vector<int64_t>();
    const auto expected64 = golden.load("greedy_ids").to_vector<int64_t>();
    const std::vector<int32_t> prompt(prompt64.begin(), prompt64.end());
    const std::vector<int32_t> expected(expected64.begin() + static_cast<std::ptrdiff_t>(prompt.size()),
                                        expected64.end());
    generate::GenerationOptions options;
    options.max_new_tokens = static_cast<int64_t>(expected.size());
    options.sampling.temperature = 0;
    EXPECT_EQ(generate::generate(model, nullptr, prompt, options).tokens, expected);
    const std::vector<std::vector<int32_t>> prompts = {prompt, {3, 1, 4, 1, 5, 9, 2, 6}, {27}};
    generate::GenerationOptions eager = options;
    eager.device_steps = false;
    const auto graph = generate::generate_batch(model, nullptr, prompts, options);
    const auto reference = generate::generate_batch(model, nullptr, prompts, eager);
    EXPECT_EQ(graph[0].tokens, expected);
    for (size_t i = 0; i < prompts.size(); ++i)
      EXPECT_EQ(graph[i].tokens, reference[i].tokens) << "prompt " << i;
  }
}

}  // namespace
}  // namespace wick::test
