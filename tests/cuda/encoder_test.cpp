// The fused encoder steps on the GPU: the embedding layer kernel gives the bits of the composition of plain
// ops run on the same GPU (out-of-range ids, no norm parameters and several row widths included), and the CPU
// op's values; mean pooling matches the CPU op over clamped lengths, empty rows included. Skips cleanly
// without a CUDA device.
#include <gtest/gtest.h>

#include "support/cuda_test.h"

namespace wick::test {
namespace {

class CudaEncoder : public CudaTest {};

INSTANTIATE_TEST_SUITE_P(Dtypes, CudaEncoder, ::testing::Values(DType::f32, DType::bf16, DType::f16),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

TEST_P(CudaEncoder, EmbeddingSumLayerNormHasTheCompositionsBits) {
  for (int64_t hidden : {384, 768, 32, 1024}) {
    for (bool norm_parameters : {true, false}) {
      SCOPED_TRACE(testing::Message()
                   << dtype_name(dtype()) << " hidden " << hidden << " norm parameters " << norm_parameters);
      const int64_t batch = 3, seq = 11, vocab = 40;
      const Tensor word = randn(gen, {vocab, hidden}, dtype()), type = randn(gen, {2, hidden}, dtype(), 0.5),
                   position = randn(gen, {seq + 1, hidden}, dtype(), 0.5);
      const Tensor weight = norm_parameters ? rand_uniform({hidden}, gen, 0.5, 1.5, dtype()) : Tensor();
      const Tensor bias = norm_parameters ? randn(gen, {hidden}, dtype(), 0.1) : Tensor();
      std::vector<int64_t> ids = rand_uniform({batch * seq}, gen, 0, vocab, DType::f64).to_vector<int64_t>();
      ids[4] = vocab + 3;  // outside the table: reads as a zero row on both paths
      ids[7] = -1;
      const Tensor id_tensor = Tensor::from_vector(ids, {batch, seq});
      const Tensor types = rand_uniform({batch, seq}, gen, 0, 2, DType::f64).to(DType::i64);
      std::vector<int64_t> positions(static_cast<size_t>(seq));
      for (int64_t s = 0; s < seq; ++s) positions[static_cast<size_t>(s)] = seq - s;
      const Tensor position_ids = Tensor::from_vector(positions, {seq});
      const auto run = [&](const char* implementation, Device device) {
        const ForcedImplementation forced("WICK_IMPL_EMBEDDING_SUM_LAYER_NORM", implementation);
        const auto to = [&](const Tensor& t) { return t.defined() ? t.to(device) : Tensor(); };
        return ops::embedding_sum_layer_norm(to(word), to(id_tensor), to(type), to(types), to(position),
                                             to(position_ids), to(weight), to(bias), 1e-12)
            .to(Device::cpu());
      };
      const Tensor fused = run("cuda_fused", gpu);
      const Tensor composed = run("composed", gpu);
      ASSERT_EQ(fused.shape(), (Shape{batch, seq, hidden}));
      EXPECT_EQ(values(fused), values(composed));
      EXPECT_LE(relative_error(fused.to(DType::f64), run("composed", Device::cpu()).to(DType::f64)),
                tolerance(dtype()));
    }
  }
}

TEST_P(CudaEncoder, MeanPoolMatchesTheCpu) {
  const std::vector<int64_t> lengths = {130, 1, 0, 77, 500, -3};
  const Tensor length_tensor = Tensor::from_vector(lengths, {6});
  for (int64_t width : {384, 1000, 7}) {
    SCOPED_TRACE(testing::Message() << dtype_name(dtype()) << " width " << width);
    const Tensor x = randn(gen, {6, 130, width}, dtype());
    const Tensor expected = ops::mean_pool(x, length_tensor);
    for (const Tensor& input : {x.to(gpu), non_contiguous(x).to(gpu)}) {
      const Tensor pooled = ops::mean_pool(input, length_tensor.to(gpu));
      ASSERT_EQ(pooled.device(), gpu);
      ASSERT_EQ(pooled.dtype(), DType::f32);
      EXPECT_LE(relative_error(pooled.to(Device::cpu()).to(DType::f64), expected.to(DType::f64)), 1e-6);
      const std::vector<double> got = values(pooled.to(Device::cpu()));
      for (int64_t c = 0; c < width; ++c) {
        EXPECT_EQ(got[static_cast<size_t>(2 * width + c)], 0.0);
        EXPECT_EQ(got[static_cast<size_t>(5 * width + c)], 0.0);
      }
    }
  }
}

TEST_P(CudaEncoder, MeanPoolInFloat64) {
  if (dtype() != DType::f32) GTEST_SKIP() << "one run covers f64";
  const Tensor x = randn(gen, {3, 20, 65}, DType::f64);
  const Tensor lengths = Tensor::from_vector(std::vector<int64_t>{20, 5, 0}, {3});
  const Tensor pooled = ops::mean_pool(x.to(gpu), lengths.to(gpu));
  ASSERT_EQ(pooled.dtype(), DType::f64);
  EXPECT_LE(relative_error(pooled.to(Device::cpu()), ops::mean_pool(x, lengths)), 1e-14);
}

}  // namespace
}  // namespace wick::test
