#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "support/test_util.h"
#include "wick/wick.h"

using namespace wick;

namespace {

using test::poison;
using test::randn;
using test::rel_error;
using test::tolerance;

// alpha·op(A)·op(B) + beta·C0 in double from the values the tensors hold, leading axes broadcast numpy-style
// against C's batch shape. c0 may be empty when beta == 0.
std::vector<double> reference(const Tensor& a, const Tensor& b, const Shape& c_shape, bool ta = false,
                              bool tb = false, double alpha = 1.0, double beta = 0.0,
                              const std::vector<double>& c0 = {}) {
  const std::vector<double> av = test::values(a), bv = test::values(b);
  const int64_t rank = static_cast<int64_t>(c_shape.size()) - 2;
  const int64_t m = c_shape[rank], n = c_shape[rank + 1];
  const int64_t k = ta ? a.size(-2) : a.size(-1);
  const int64_t ac = a.size(-1), bc = b.size(-1);
  // Offset of the matrix of operand `t` used for batch multi-index `index`.
  auto matrix_offset = [&](const Tensor& t, const std::vector<int64_t>& index) {
    const int64_t t_rank = t.dim() - 2;
    int64_t offset = 0;
    for (int64_t j = 0; j < t_rank; ++j) {
      const int64_t i = t.size(j) == 1 ? 0 : index[j + rank - t_rank];
      offset = offset * t.size(j) + i;
    }
    return offset * t.size(-2) * t.size(-1);
  };
  std::vector<double> out(static_cast<size_t>(shape_numel(c_shape)));
  const int64_t batches = shape_numel(Shape(c_shape.begin(), c_shape.end() - 2));
  for (int64_t batch = 0; batch < batches; ++batch) {
    std::vector<int64_t> index(rank);
    for (int64_t j = rank - 1, rest = batch; j >= 0; --j) {
      index[j] = rest % c_shape[j];
      rest /= c_shape[j];
    }
    const double* am = av.data() + matrix_offset(a, index);
    const double* bm = bv.data() + matrix_offset(b, index);
    for (int64_t i = 0; i < m; ++i) {
      for (int64_t j = 0; j < n; ++j) {
        double sum = 0;
        for (int64_t p = 0; p < k; ++p)
          sum += (ta ? am[p * ac + i] : am[i * ac + p]) * (tb ? bm[j * bc + p] : bm[p * bc + j]);
        const size_t at = static_cast<size_t>((batch * m + i) * n + j);
        out[at] = alpha * sum + (beta != 0.0 ? beta * c0[at] : 0.0);
      }
    }
  }
  return out;
}

// A of op-shape [m, k] (stored [k, m] when transposed), with `batch` leading axes.
Tensor make_operand(Generator& gen, Shape batch, int64_t rows, int64_t cols, bool transposed,
                    DType dtype = DType::f32) {
  if (transposed) std::swap(rows, cols);
  batch.push_back(rows);
  batch.push_back(cols);
  return randn(gen, batch, dtype);
}

ops::GemmOptions options(bool ta, bool tb, double alpha = 1.0, double beta = 0.0) {
  ops::GemmOptions o;
  o.transpose_a = ta;
  o.transpose_b = tb;
  o.alpha = alpha;
  o.beta = beta;
  return o;
}

struct Size {
  int64_t m, n, k;
};

const std::vector<Size> kSizes = {{1, 1, 1}, {7, 5, 3}, {33, 17, 65}, {1, 9, 4},
                                  {6, 1, 8}, {5, 7, 1}, {64, 33, 7},  {2, 130, 3}};

}  // namespace

TEST(Gemm, AllTransposeCombinationsAndOddSizes) {
  Generator gen = test::fresh_generator();
  for (const Size& s : kSizes) {
    for (bool ta : {false, true}) {
      for (bool tb : {false, true}) {
        SCOPED_TRACE(testing::Message() << s.m << "x" << s.n << "x" << s.k << " ta=" << ta << " tb=" << tb);
        Tensor a = make_operand(gen, {}, s.m, s.k, ta);
        Tensor b = make_operand(gen, {}, s.k, s.n, tb);
        Tensor c = Tensor::empty({s.m, s.n});
        poison(c);
        ops::gemm(a, b, c, options(ta, tb));
        const std::vector<double> expected = reference(a, b, {s.m, s.n}, ta, tb);
        EXPECT_LT(rel_error(c, expected), tolerance(DType::f32));
        Tensor d = ops::matmul(a, b, ta, tb);
        EXPECT_EQ(d.shape(), (Shape{s.m, s.n}));
        EXPECT_EQ(d.dtype(), DType::f32);
        EXPECT_LT(rel_error(d, expected), tolerance(DType::f32));
      }
    }
  }
}

TEST(Gemm, AlphaAndBeta) {
  Generator gen = test::fresh_generator();
  for (bool ta : {false, true}) {
    for (bool tb : {false, true}) {
      Tensor a = make_operand(gen, {}, 9, 13, ta);
      Tensor b = make_operand(gen, {}, 13, 11, tb);
      Tensor c = randn(gen, {9, 11});
      const std::vector<double> c0 = test::values(c);
      ops::gemm(a, b, c, options(ta, tb, -1.5, 0.5));
      EXPECT_LT(rel_error(c, reference(a, b, {9, 11}, ta, tb, -1.5, 0.5, c0)), tolerance(DType::f32));
    }
  }
  // alpha 0, beta 1 leaves C unchanged; alpha 0, beta 0 overwrites even NaN with zeros.
  Tensor a = randn(gen, {4, 5}), b = randn(gen, {5, 6}), c = randn(gen, {4, 6});
  const std::vector<double> c0 = test::values(c);
  ops::gemm(a, b, c, options(false, false, 0.0, 1.0));
  EXPECT_EQ(test::values(c), c0);
  poison(c);
  ops::gemm(a, b, c, options(false, false, 0.0, 0.0));
  EXPECT_EQ(test::values(c), std::vector<double>(24, 0.0));
}

TEST(Gemm, EmptyInnerAndOuterDimensions) {
  Generator gen = test::fresh_generator();
  // K == 0: no products, so C = beta·C; with beta == 0 a poisoned C becomes zeros.
  Tensor a = Tensor::zeros({3, 0}), b = Tensor::zeros({0, 4});
  Tensor c = Tensor::empty({3, 4});
  poison(c);
  ops::gemm(a, b, c);
  EXPECT_EQ(test::values(c), std::vector<double>(12, 0.0));
  Tensor c2 = randn(gen, {3, 4});
  const std::vector<double> c0 = test::values(c2);
  ops::gemm(a, b, c2, options(false, false, 1.0, 2.0));
  EXPECT_LT(rel_error(c2, reference(a, b, {3, 4}, false, false, 1.0, 2.0, c0)), 1e-7);
  EXPECT_EQ(ops::matmul(Tensor::zeros({0, 5}), randn(gen, {5, 3})).shape(), (Shape{0, 3}));
  EXPECT_EQ(ops::matmul(randn(gen, {2, 5}), Tensor::zeros({5, 0})).shape(), (Shape{2, 0}));
}

TEST(Gemm, BatchedAndBroadcastBatch) {
  Generator gen = test::fresh_generator();
  struct Case {
    Shape a_batch, b_batch, c_batch;
  };
  const std::vector<Case> cases = {
      {{2, 3}, {}, {2, 3}},         // A batched, B one matrix
      {{}, {3}, {3}},               // B batched, A 2-D
      {{4}, {4}, {4}},              // both batched
      {{2, 1}, {3}, {2, 3}},        // both broadcast into a batch neither has
      {{1, 3}, {2, 1}, {2, 3}},     // size-1 batch axes on both sides
      {{2, 3}, {1, 1, 1}, {2, 3}},  // B with more (all size-1) batch axes than C needs
  };
  for (const Case& cs : cases) {
    for (bool ta : {false, true}) {
      for (bool tb : {false, true}) {
        SCOPED_TRACE(testing::Message() << shape_str(cs.a_batch) << " x " << shape_str(cs.b_batch)
                                        << " ta=" << ta << " tb=" << tb);
        Tensor a = make_operand(gen, cs.a_batch, 5, 7, ta);
        Tensor b = make_operand(gen, cs.b_batch, 7, 3, tb);
        Shape c_shape = broadcast_shapes("test", cs.a_batch, cs.b_batch);
        c_shape.push_back(5);
        c_shape.push_back(3);
        Tensor c = ops::matmul(a, b, ta, tb);
        ASSERT_EQ(c.shape(), c_shape);
        EXPECT_LT(rel_error(c, reference(a, b, c_shape, ta, tb)), tolerance(DType::f32));
        Tensor c2 = randn(gen, c_shape);
        const std::vector<double> c0 = test::values(c2);
        ops::gemm(a, b, c2, options(ta, tb, 0.75, -2.0));
        EXPECT_LT(rel_error(c2, reference(a, b, c_shape, ta, tb, 0.75, -2.0, c0)), tolerance(DType::f32));
      }
    }
  }
}

TEST(Gemm, NonContiguousOperands) {
  Generator gen = test::fresh_generator();
  for (bool ta : {false, true}) {
    for (bool tb : {false, true}) {
      SCOPED_TRACE(testing::Message() << "ta=" << ta << " tb=" << tb);
      // Stored transposed.
      Tensor a = test::non_contiguous(make_operand(gen, {3}, 6, 9, ta));
      Tensor b = test::non_contiguous(make_operand(gen, {3}, 9, 4, tb));
      EXPECT_LT(rel_error(ops::matmul(a, b, ta, tb), reference(a, b, {3, 6, 4}, ta, tb)),
                tolerance(DType::f32));
      // Slices: a leading dimension larger than the matrix, a column step, a batch step.
      Tensor a_op = ta ? randn(gen, {9, 15}).narrow(1, 4, 6) : randn(gen, {6, 20}).narrow(1, 3, 9);
      const int64_t b_rows = tb ? 4 : 9, b_cols = tb ? 9 : 4;
      Tensor b_step = randn(gen, {b_rows, 2 * b_cols}).slice(1, 1, 2 * b_cols, 2);
      ASSERT_EQ(b_step.shape(), (Shape{b_rows, b_cols}));
      EXPECT_LT(rel_error(ops::matmul(a_op, b_step, ta, tb), reference(a_op, b_step, {6, 4}, ta, tb)),
                tolerance(DType::f32));
      Tensor a_batch_step = make_operand(gen, {6}, 6, 9, ta).slice(0, 0, 6, 2);
      Tensor b_every_other = make_operand(gen, {3, 2}, 9, 4, tb).select(1, 1);
      EXPECT_LT(rel_error(ops::matmul(a_batch_step, b_every_other, ta, tb),
                          reference(a_batch_step, b_every_other, {3, 6, 4}, ta, tb)),
                tolerance(DType::f32));
    }
  }
}

TEST(Gemm, NonContiguousOutput) {
  Generator gen = test::fresh_generator();
  Tensor a = randn(gen, {2, 3, 6, 5}), b = randn(gen, {5, 7});
  const Shape c_shape = {2, 3, 6, 7};
  for (double beta : {0.0, 0.5}) {
    SCOPED_TRACE(beta);
    // Column-major C: a transposed view of [..., 7, 6] storage.
    Tensor stored = randn(gen, {2, 3, 7, 6});
    Tensor c = stored.transpose(-1, -2);
    std::vector<double> c0 = test::values(c);
    if (beta == 0.0) poison(c);
    ops::gemm(a, b, c, options(false, false, 1.0, beta));
    EXPECT_LT(rel_error(c, reference(a, b, c_shape, false, false, 1.0, beta, c0)), tolerance(DType::f32));

    // A narrow of a wider buffer: the columns outside the view stay as they were.
    Tensor wide = Tensor::full({2, 3, 6, 10}, 42.0);
    Tensor narrow = wide.narrow(-1, 2, 7);
    narrow.copy_(randn(gen, c_shape));
    c0 = test::values(narrow);
    if (beta == 0.0) poison(narrow);
    ops::gemm(a, b, narrow, options(false, false, -1.0, beta));
    EXPECT_LT(rel_error(narrow, reference(a, b, c_shape, false, false, -1.0, beta, c0)),
              tolerance(DType::f32));
    const std::vector<double> all = test::values(wide);
    for (size_t i = 0; i < all.size(); ++i) {
      if (i % 10 < 2 || i % 10 >= 9) {
        ASSERT_EQ(all[i], 42.0) << i;
      }
    }

    // Batch axes that do not collapse: C computed elsewhere and written back.
    Tensor permuted = randn(gen, {3, 2, 6, 7}).permute({1, 0, 2, 3});
    c0 = test::values(permuted);
    if (beta == 0.0) poison(permuted);
    ops::gemm(a, b, permuted, options(false, false, 2.0, beta));
    EXPECT_LT(rel_error(permuted, reference(a, b, c_shape, false, false, 2.0, beta, c0)),
              tolerance(DType::f32));
  }
}

TEST(Gemm, HalfAndDoubleDtypes) {
  Generator gen = test::fresh_generator();
  for (DType dtype : {DType::f64, DType::bf16, DType::f16}) {
    for (bool ta : {false, true}) {
      for (bool tb : {false, true}) {
        SCOPED_TRACE(testing::Message() << dtype_name(dtype) << " ta=" << ta << " tb=" << tb);
        Tensor a = make_operand(gen, {2}, 17, 33, ta, dtype);
        Tensor b = make_operand(gen, {}, 33, 9, tb, dtype);
        Tensor c = ops::matmul(a, b, ta, tb);
        EXPECT_EQ(c.dtype(), dtype);
        // The reference uses the values a and b hold, so only accumulation and output rounding count.
        EXPECT_LT(rel_error(c, reference(a, b, {2, 17, 9}, ta, tb)), tolerance(dtype));
        Tensor c2 = randn(gen, {2, 17, 9}, dtype);
        const std::vector<double> c0 = test::values(c2);
        ops::gemm(test::non_contiguous(a), b, c2, options(ta, tb, 0.5, 1.5));
        EXPECT_LT(rel_error(c2, reference(a, b, {2, 17, 9}, ta, tb, 0.5, 1.5, c0)), tolerance(dtype));
      }
    }
  }
}

TEST(Gemm, OutputDtypeMayDifferFromInputs) {
  Generator gen = test::fresh_generator();
  Tensor a = randn(gen, {8, 21}, DType::bf16), b = randn(gen, {21, 5}, DType::bf16);
  Tensor c = Tensor::empty({8, 5}, DType::f32);
  poison(c);
  ops::gemm(a, b, c);
  EXPECT_LT(rel_error(c, reference(a, b, {8, 5})), tolerance(DType::f32));
  Tensor a32 = randn(gen, {8, 21}), b32 = randn(gen, {5, 21});
  Tensor h = randn(gen, {8, 5}, DType::f16);
  const std::vector<double> h0 = test::values(h);
  ops::gemm(a32, b32, h, options(false, true, 1.0, -1.0));
  EXPECT_LT(rel_error(h, reference(a32, b32, {8, 5}, false, true, 1.0, -1.0, h0)), tolerance(DType::f16));
  Tensor d = Tensor::empty({8, 5}, DType::f64);
  poison(d);
  ops::gemm(a32, b32, d, options(false, true));
  EXPECT_LT(rel_error(d, reference(a32, b32, {8, 5}, false, true)), tolerance(DType::f32));
}

TEST(Gemm, BadInputsAreErrors) {
  using test::expect_error;
  Tensor a = Tensor::zeros({4, 5}), b = Tensor::zeros({6, 3}), c = Tensor::zeros({4, 3});
  expect_error([&] { ops::gemm(a, b, c); }, {"[gemm]", "inner dimensions differ", "4×5", "6×3"});
  expect_error([&] { ops::matmul(a, b); }, {"[gemm]", "inner dimensions differ"});
  expect_error(
      [&] {
        ops::gemm(a, Tensor::zeros({3, 6}), c, options(false, true));
      },
      {"[gemm]", "inner dimensions differ", "transposed"});
  expect_error(
      [&] {
        ops::gemm(a, Tensor::zeros({5, 3}), Tensor::zeros({3, 4}));
      },
      {"[gemm]", "c must have shape [4, 3]", "[3, 4]"});
  expect_error(
      [&] {
        ops::gemm(a, Tensor::zeros({5, 3}), Tensor::zeros({2, 4, 3}));
      },
      {"[gemm]", "c must have shape [4, 3]"});
  expect_error(
      [&] {
        ops::gemm(a, Tensor::zeros({5, 3}, DType::f64), c);
      },
      {"[gemm]", "'a'", "'b'", "same dtype"});
  expect_error(
      [&] {
        ops::matmul(Tensor::zeros({4, 5}, DType::bf16), Tensor::zeros({5, 3}));
      },
      {"[gemm]", "same dtype"});
  expect_error(
      [&] {
        ops::gemm(Tensor::zeros({5}), Tensor::zeros({5, 3}), Tensor::zeros({1, 3}));
      },
      {"[gemm]", "rank >= 2"});
  expect_error([&] { ops::matmul(Tensor::zeros({4, 5}), Tensor::zeros({5})); }, {"[matmul]", "rank >= 2"});
  expect_error(
      [&] {
        ops::matmul(Tensor::zeros({2, 4, 5}), Tensor::zeros({3, 5, 6}));
      },
      {"cannot be broadcast", "[2]", "[3]"});
  expect_error(
      [&] {
        ops::matmul(Tensor::zeros({4, 5}, DType::i32), Tensor::zeros({5, 3}, DType::i32));
      },
      {"[matmul]", "floating-point", "'a'"});
  expect_error(
      [&] {
        ops::gemm(a, Tensor::zeros({5, 3}), Tensor::zeros({4, 3}, DType::i64));
      },
      {"[gemm]", "'c'", "floating-point"});
  ops::GemmOptions tf32;
  tf32.allow_tf32 = true;
  expect_error(
      [&] {
        ops::gemm(Tensor::zeros({4, 5}, DType::f64), Tensor::zeros({5, 3}, DType::f64),
                  Tensor::zeros({4, 3}, DType::f64), tf32);
      },
      {"[gemm]", "allow_tf32", "f32 operands only"});
}
