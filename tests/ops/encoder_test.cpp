// The fused encoder steps on the CPU: embedding_sum_layer_norm is its composition of plain ops (bit for bit)
// and matches a float64 reference; mean_pool matches a float64 mean over each row's first tokens; bad
// arguments give one clear error naming the op.
#include <gtest/gtest.h>

#include "support/reference.h"
#include "support/test_util.h"
#include "wick/wick.h"

namespace wick {
namespace {

constexpr DType kFloatTypes[] = {DType::f32, DType::f64, DType::bf16, DType::f16};

struct EmbeddingInputs {
  Tensor word, type, position, weight, bias, ids, types, positions;
};

EmbeddingInputs random_embedding_inputs(Generator& gen, DType dtype, int64_t batch, int64_t seq,
                                        int64_t hidden) {
  EmbeddingInputs in;
  in.word = test::randn(gen, {50, hidden}, dtype);
  in.type = test::randn(gen, {2, hidden}, dtype, 0.5);
  in.position = test::randn(gen, {seq + 3, hidden}, dtype, 0.5);
  in.weight = rand_uniform({hidden}, gen, 0.5, 1.5, dtype);
  in.bias = test::randn(gen, {hidden}, dtype, 0.1);
  in.ids = rand_uniform({batch, seq}, gen, 0, 50, DType::f64).to(DType::i64);
  in.types = rand_uniform({batch, seq}, gen, 0, 2, DType::f64).to(DType::i64);
  std::vector<int64_t> positions(static_cast<size_t>(seq));
  for (int64_t s = 0; s < seq; ++s) positions[static_cast<size_t>(s)] = (s * 7 + 1) % (seq + 3);
  in.positions = Tensor::from_vector(positions, {seq});
  return in;
}

TEST(EncoderOps, EmbeddingSumLayerNormIsTheComposition) {
  Generator gen = test::fresh_generator();
  SCOPED_TRACE(ref::seed_of(gen));
  const int64_t batch = 3, seq = 5, hidden = 24;
  for (DType dtype : kFloatTypes) {
    SCOPED_TRACE(dtype_name(dtype));
    const EmbeddingInputs in = random_embedding_inputs(gen, dtype, batch, seq, hidden);
    const Tensor out = ops::embedding_sum_layer_norm(in.word, in.ids, in.type, in.types, in.position,
                                                     in.positions, in.weight, in.bias, 1e-12);
    const Tensor sum = ops::add(ops::add(ops::embedding(in.word, in.ids), ops::embedding(in.type, in.types)),
                                ops::embedding(in.position, in.positions));
    const Tensor composed = ops::layer_norm(sum, in.weight, in.bias, 1e-12);
    ASSERT_EQ(out.shape(), (Shape{batch, seq, hidden}));
    ASSERT_EQ(out.dtype(), dtype);
    EXPECT_EQ(test::values(out), test::values(composed));

    // Against float64: the sum of the three rows, then LayerNorm.
    const ref::Vec word = test::values(in.word), type = test::values(in.type),
                   position = test::values(in.position);
    const std::vector<int64_t> ids = in.ids.to_vector<int64_t>(), types = in.types.to_vector<int64_t>(),
                               positions = in.positions.to_vector<int64_t>();
    ref::Vec x(static_cast<size_t>(batch * seq * hidden));
    for (int64_t t = 0; t < batch * seq; ++t)
      for (int64_t c = 0; c < hidden; ++c)
        x[t * hidden + c] = word[ids[t] * hidden + c] + type[types[t] * hidden + c] +
                            position[positions[t % seq] * hidden + c];
    ref::expect_close(
        out, ref::layer_norm(x, test::values(in.weight), test::values(in.bias), batch * seq, hidden, 1e-12),
        dtype == DType::f64 ? 1e-12 : 2 * test::tolerance(dtype));
  }
}

TEST(EncoderOps, EmbeddingSumLayerNormWithoutNormParameters) {
  Generator gen = test::fresh_generator();
  SCOPED_TRACE(ref::seed_of(gen));
  const EmbeddingInputs in = random_embedding_inputs(gen, DType::f32, 2, 4, 16);
  const Tensor out = ops::embedding_sum_layer_norm(in.word, in.ids, in.type, in.types, in.position,
                                                   in.positions, Tensor(), Tensor(), 1e-5);
  const Tensor sum = ops::add(ops::add(ops::embedding(in.word, in.ids), ops::embedding(in.type, in.types)),
                              ops::embedding(in.position, in.positions));
  EXPECT_EQ(test::values(out), test::values(ops::layer_norm(sum, Tensor(), Tensor(), 1e-5)));
}

TEST(EncoderOps, MeanPoolAveragesEachRowsFirstTokens) {
  Generator gen = test::fresh_generator();
  SCOPED_TRACE(ref::seed_of(gen));
  const int64_t batch = 5, seq = 7, width = 13;
  // Lengths past either end are clamped; 0 (and below) pools to zeros.
  const std::vector<int64_t> lengths = {7, 3, 0, 9, -2};
  for (DType dtype : kFloatTypes) {
    SCOPED_TRACE(dtype_name(dtype));
    const Tensor x = test::randn(gen, {batch, seq, width}, dtype);
    for (const Tensor& input : {x, test::non_contiguous(x)}) {
      const Tensor out = ops::mean_pool(input, Tensor::from_vector(lengths, {batch}));
      ASSERT_EQ(out.shape(), (Shape{batch, width}));
      EXPECT_EQ(out.dtype(), dtype == DType::f64 ? DType::f64 : DType::f32);
      const ref::Vec v = test::values(x);
      ref::Vec expected(static_cast<size_t>(batch * width), 0.0);
      for (int64_t b = 0; b < batch; ++b) {
        const int64_t n = std::clamp<int64_t>(lengths[b], 0, seq);
        for (int64_t c = 0; c < width; ++c) {
          for (int64_t s = 0; s < n; ++s) expected[b * width + c] += v[(b * seq + s) * width + c];
          if (n > 0) expected[b * width + c] /= static_cast<double>(n);
        }
      }
      ref::expect_close(out, expected, dtype == DType::f64 ? 1e-15 : 1e-7);
      for (int64_t c = 0; c < width; ++c) {
        EXPECT_EQ(test::values(out)[2 * width + c], 0.0);
        EXPECT_EQ(test::values(out)[4 * width + c], 0.0);
      }
    }
  }
}

TEST(EncoderOps, BadArgumentsNameTheProblem) {
  Generator gen = test::fresh_generator();
  const EmbeddingInputs in = random_embedding_inputs(gen, DType::f32, 2, 4, 16);
  const auto call = [&](const Tensor& word, const Tensor& ids, const Tensor& types, const Tensor& positions,
                        const Tensor& weight) {
    ops::embedding_sum_layer_norm(word, ids, in.type, types, in.position, positions, weight, in.bias, 1e-5);
  };
  test::expect_error(
      [&] {
        call(test::randn(gen, {50, 8}), in.ids, in.types, in.positions, in.weight);
      },
      {"embedding_sum_layer_norm", "type_table", "8 columns"});
  test::expect_error([&] { call(in.word, in.ids.to(DType::i32), in.types, in.positions, in.weight); },
                     {"embedding_sum_layer_norm", "'ids'", "i64"});
  test::expect_error([&] { call(in.word, in.ids, in.types.narrow(1, 0, 3), in.positions, in.weight); },
                     {"embedding_sum_layer_norm", "'types'", "[2, 4]"});
  test::expect_error([&] { call(in.word, in.ids, in.types, in.positions.narrow(0, 0, 2), in.weight); },
                     {"embedding_sum_layer_norm", "'positions'", "[4]"});
  test::expect_error([&] { call(in.word, in.ids, in.types, in.positions, in.weight.to(DType::f16)); },
                     {"embedding_sum_layer_norm", "same dtype"});
  test::expect_error(
      [&] {
        ops::mean_pool(test::randn(gen, {2, 3}), Tensor::zeros({2}, DType::i64));
      },
      {"mean_pool", "'x'", "rank 3"});
  test::expect_error(
      [&] {
        ops::mean_pool(test::randn(gen, {2, 3, 4}), Tensor::zeros({3}, DType::i64));
      },
      {"mean_pool", "'lengths'", "[2]"});
  test::expect_error(
      [&] {
        ops::mean_pool(test::randn(gen, {2, 3, 4}), Tensor::zeros({2}, DType::f32));
      },
      {"mean_pool", "'lengths'", "i64"});
}

}  // namespace
}  // namespace wick
