#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "support/test_util.h"
#include "wick/wick.h"

using namespace wick;

namespace {

// Random ids in [0, vocab) of `shape` and `dtype` (i32 or i64), with repeats when numel > vocab.
Tensor random_ids(Generator& gen, const Shape& shape, int64_t vocab, DType dtype) {
  std::vector<int64_t> ids;
  for (double u : test::values(rand_uniform(shape, gen, 0.0, static_cast<double>(vocab), DType::f64)))
    ids.push_back(static_cast<int64_t>(u));
  return Tensor::from_vector(ids, shape).to(dtype);
}

std::vector<double> naive_embedding(const Tensor& weight, const Tensor& ids) {
  const std::vector<double> w = test::values(weight);
  const int64_t dim = weight.size(1);
  std::vector<double> out;
  for (int64_t id : ids.to_vector<int64_t>())
    for (int64_t j = 0; j < dim; ++j) out.push_back(w[id * dim + j]);
  return out;
}

std::vector<double> naive_backward(const Tensor& ids, const Tensor& dy, int64_t vocab) {
  const std::vector<double> g = test::values(dy);
  const int64_t dim = dy.size(-1);
  std::vector<double> dw(static_cast<size_t>(vocab * dim), 0.0);
  const std::vector<int64_t> id = ids.to_vector<int64_t>();
  for (size_t i = 0; i < id.size(); ++i)
    for (int64_t j = 0; j < dim; ++j) dw[id[i] * dim + j] += g[i * dim + j];
  return dw;
}

}  // namespace

TEST(Embedding, GathersRowsForAnyIdsShape) {
  Generator gen = test::fresh_generator();
  for (DType weight_dtype : {DType::f32, DType::bf16, DType::f64}) {
    Tensor weight = test::randn(gen, {11, 6}, weight_dtype);
    for (DType id_dtype : {DType::i32, DType::i64}) {
      for (const Shape& shape : {Shape{}, Shape{1}, Shape{7}, Shape{2, 5}, Shape{2, 3, 4}, Shape{0, 3}}) {
        SCOPED_TRACE(testing::Message()
                     << dtype_name(weight_dtype) << " " << dtype_name(id_dtype) << " " << shape_str(shape));
        Tensor ids = random_ids(gen, shape, 11, id_dtype);
        Tensor out = ops::embedding(weight, ids);
        Shape expected_shape = shape;
        expected_shape.push_back(6);
        ASSERT_EQ(out.shape(), expected_shape);
        EXPECT_EQ(out.dtype(), weight_dtype);
        // A gather copies values exactly.
        EXPECT_EQ(test::values(out), naive_embedding(weight, ids));
      }
    }
  }
}

TEST(Embedding, NonContiguousWeightAndIds) {
  Generator gen = test::fresh_generator();
  Tensor weight = test::non_contiguous(test::randn(gen, {9, 5}));
  Tensor ids = random_ids(gen, {4, 3}, 9, DType::i64).transpose(0, 1);
  EXPECT_EQ(test::values(ops::embedding(weight, ids)), naive_embedding(weight, ids));
  Tensor narrow_weight = test::randn(gen, {9, 12}).narrow(1, 4, 5);
  Tensor stepped_ids = random_ids(gen, {10}, 9, DType::i32).slice(0, 1, 10, 3);
  EXPECT_EQ(test::values(ops::embedding(narrow_weight, stepped_ids)),
            naive_embedding(narrow_weight, stepped_ids));
  // Every id, including the first and last row.
  Tensor all = Tensor::from_vector<int32_t>({8, 0, 4, 8, 0}, {5});
  EXPECT_EQ(test::values(ops::embedding(weight, all)), naive_embedding(weight, all));
}

TEST(EmbeddingBackward, ScatterAddsRepeatedIds) {
  Generator gen = test::fresh_generator();
  const int64_t vocab = 5;
  for (DType dy_dtype : {DType::f32, DType::bf16, DType::f64}) {
    for (DType id_dtype : {DType::i32, DType::i64}) {
      SCOPED_TRACE(testing::Message() << dtype_name(dy_dtype) << " " << dtype_name(id_dtype));
      // 24 ids over a vocabulary of 5: repeats are certain; id 4 never occurs, so its row must be zero.
      Tensor ids = random_ids(gen, {2, 3, 4}, vocab - 1, id_dtype);
      Tensor dy = test::randn(gen, {2, 3, 4, 7}, dy_dtype);
      Tensor dw = ops::embedding_backward(ids, dy, vocab);
      ASSERT_EQ(dw.shape(), (Shape{vocab, 7}));
      EXPECT_EQ(dw.dtype(), dy_dtype == DType::f64 ? DType::f64 : DType::f32);
      const std::vector<double> expected = naive_backward(ids, dy, vocab);
      EXPECT_LT(test::rel_error(dw, expected),
                test::tolerance(dy_dtype == DType::f64 ? DType::f64 : DType::f32));
      const std::vector<double> got = test::values(dw);
      for (int64_t j = 0; j < 7; ++j) EXPECT_EQ(got[4 * 7 + j], 0.0);
    }
  }
  // Exact small case, with non-contiguous ids and dy.
  Tensor ids = Tensor::from_vector<int64_t>({2, 0, 2, 2}, {2, 2}).transpose(0, 1);  // positions: 2, 2, 0, 2
  Tensor dy = Tensor::from_vector<float>({1, 10, 2, 20, 3, 30, 4, 40}, {2, 2, 2}).transpose(0, 1);
  EXPECT_EQ(test::values(ops::embedding_backward(ids, dy, 4)),
            (std::vector<double>{2, 20, 0, 0, 1 + 3 + 4, 10 + 30 + 40, 0, 0}));
}

TEST(Embedding, BadInputsAreErrors) {
  using test::expect_error;
  Tensor weight = Tensor::zeros({10, 4});
  expect_error(
      [&] {
        ops::embedding(weight, Tensor::from_vector<int64_t>({1, 2, 10, 3}, {4}));
      },
      {"[embedding]", "id 10 at position 2", "out of range", "expected 0..9"});
  expect_error(
      [&] {
        ops::embedding(weight, Tensor::from_vector<int32_t>({0, 1, 2, 3, -1, 5}, {2, 3}));
      },
      {"[embedding]", "id -1 at position 4"});
  expect_error([&] { ops::embedding(weight, Tensor::zeros({3}, DType::f32)); },
               {"[embedding]", "'ids'", "indices (i32 or i64)"});
  expect_error([&] { ops::embedding(Tensor::zeros({10}), Tensor::zeros({3}, DType::i64)); },
               {"[embedding]", "'weight'", "rank 2"});
  Tensor ids = Tensor::from_vector<int64_t>({0, 7, 3}, {3});
  expect_error(
      [&] {
        ops::embedding_backward(ids, Tensor::zeros({3, 4}), 5);
      },
      {"[embedding_backward]", "id 7 at position 1", "expected 0..4"});
  expect_error(
      [&] {
        ops::embedding_backward(ids, Tensor::zeros({4, 4}), 10);
      },
      {"[embedding_backward]", "dy must have shape", "[3]"});
  expect_error([&] { ops::embedding_backward(ids, Tensor::zeros({3}), 10); }, {"[embedding_backward]", "dy"});
  expect_error(
      [&] {
        ops::embedding_backward(ids, Tensor::zeros({3, 4}), 0);
      },
      {"[embedding_backward]", "vocab must be > 0"});
  expect_error(
      [&] {
        ops::embedding_backward(Tensor::zeros({3}), Tensor::zeros({3, 4}), 10);
      },
      {"[embedding_backward]", "indices"});
}
