// The LoRA linear layer against a float64 reference built from plain loops, its backward against the
// reference and finite differences, and the GEMM bias epilogue it uses.
#include <gtest/gtest.h>

#include "support/test_util.h"

namespace wick::test {
namespace {

// y[t, o] = Σ_i x[t, i]·w[o, i] + scale·Σ_k (Σ_i x[t, i]·a[k, i])·b[o, k] + bias[o]
std::vector<double> lora_reference(const Tensor& x, const Tensor& w, const Tensor& a, const Tensor& b,
                                   double scale, const Tensor& bias) {
  const int64_t in = w.size(1), out = w.size(0), rank = a.size(0), tokens = x.numel() / in;
  const auto xv = values(x), wv = values(w), av = values(a), bv = values(b);
  const auto biasv = bias.defined() ? values(bias) : std::vector<double>(out, 0.0);
  std::vector<double> y(tokens * out);
  for (int64_t t = 0; t < tokens; ++t) {
    std::vector<double> xa(rank, 0.0);
    for (int64_t k = 0; k < rank; ++k)
      for (int64_t i = 0; i < in; ++i) xa[k] += xv[t * in + i] * av[k * in + i];
    for (int64_t o = 0; o < out; ++o) {
      double sum = biasv[o];
      for (int64_t i = 0; i < in; ++i) sum += xv[t * in + i] * wv[o * in + i];
      for (int64_t k = 0; k < rank; ++k) sum += scale * xa[k] * bv[o * rank + k];
      y[t * out + o] = sum;
    }
  }
  return y;
}

TEST(LoraLinear, ForwardMatchesReference) {
  Generator gen = fresh_generator();
  for (DType dtype : {DType::f64, DType::f32, DType::bf16}) {
    const Tensor x = randn(gen, {2, 5, 24}, dtype), w = randn(gen, {17, 24}, dtype),
                 a = randn(gen, {4, 24}, dtype);
    const Tensor b = randn(gen, {17, 4}, dtype), bias = randn(gen, {17}, dtype);
    const auto result = ops::lora_linear(x, w, a, b, 2.5, bias);
    ASSERT_EQ(result.y.shape(), (Shape{2, 5, 17}));
    ASSERT_EQ(result.xa.shape(), (Shape{2, 5, 4}));
    EXPECT_LE(rel_error(result.y, lora_reference(x, w, a, b, 2.5, bias)), 3 * tolerance(dtype))
        << dtype_name(dtype);
    EXPECT_LE(
        rel_error(ops::lora_linear(non_contiguous(x), w, a, b, 2.5).y, lora_reference(x, w, a, b, 2.5, {})),
        3 * tolerance(dtype));
  }
}

TEST(LoraLinear, BackwardMatchesFiniteDifferences) {
  Generator gen = fresh_generator();
  const Tensor x = randn(gen, {3, 7, 10}, DType::f64), w = randn(gen, {6, 10}, DType::f64);
  const Tensor a = randn(gen, {2, 10}, DType::f64), b = randn(gen, {6, 2}, DType::f64);
  const Tensor dy = randn(gen, {3, 7, 6}, DType::f64);
  const double scale = 0.75;
  const auto forward = ops::lora_linear(x, w, a, b, scale);
  const auto grads = ops::lora_linear_backward(x, w, a, b, scale, forward.xa, dy);
  ASSERT_EQ(grads.da.dtype(), DType::f64);
  auto check = [&](const Tensor& param, const Tensor& grad, const std::function<Tensor(const Tensor&)>& f) {
    std::vector<int64_t> indices;
    for (int64_t i = 0; i < param.numel(); ++i) indices.push_back(i);
    const auto numeric = finite_difference(f, param, dy, indices);
    EXPECT_LE(rel_error(grad, numeric), 1e-7);
  };
  check(a, grads.da, [&](const Tensor& p) { return ops::lora_linear(x, w, p, b, scale).y; });
  check(b, grads.db, [&](const Tensor& p) { return ops::lora_linear(x, w, a, p, scale).y; });
  check(x, grads.dx, [&](const Tensor& p) { return ops::lora_linear(p, w, a, b, scale).y; });
  EXPECT_FALSE(ops::lora_linear_backward(x, w, a, b, scale, forward.xa, dy, false).dx.defined());
}

TEST(LoraLinear, BadShapesAreClearErrors) {
  const Tensor x = Tensor::zeros({4, 8}), w = Tensor::zeros({6, 8}), a = Tensor::zeros({2, 8});
  expect_error(
      [&] {
        ops::lora_linear(x, w, a, Tensor::zeros({6, 3}), 1.0);
      },
      {"[lora_linear]", "argument 'b' must have shape [6, 2]"});
  expect_error(
      [&] {
        ops::lora_linear(x, w, Tensor::zeros({2, 7}), Tensor::zeros({6, 2}), 1.0);
      },
      {"[lora_linear]", "argument 'a' must have shape [2, 8]"});
  expect_error(
      [&] {
        ops::lora_linear(x, w, a, Tensor::zeros({6, 2}, DType::bf16), 1.0);
      },
      {"[lora_linear]", "same dtype"});
}

TEST(Gemm, BiasEpilogueAddsToEveryRow) {
  Generator gen = fresh_generator();
  const Tensor a = randn(gen, {2, 5, 7}), b = randn(gen, {7, 3}), bias = randn(gen, {3}),
               c0 = randn(gen, {2, 5, 3});
  ops::GemmOptions options;
  options.bias = bias;
  options.beta = 0.5;
  Tensor c = c0.clone();
  ops::gemm(a, b, c, options);
  const auto av = values(a), bv = values(b), biasv = values(bias), cv = values(c0);
  std::vector<double> expected(cv.size());
  for (int64_t batch = 0; batch < 2; ++batch)
    for (int64_t i = 0; i < 5; ++i)
      for (int64_t j = 0; j < 3; ++j) {
        double sum = 0;
        for (int64_t k = 0; k < 7; ++k) sum += av[(batch * 5 + i) * 7 + k] * bv[k * 3 + j];
        const int64_t at = (batch * 5 + i) * 3 + j;
        expected[at] = sum + 0.5 * cv[at] + biasv[j];
      }
  EXPECT_LE(rel_error(c, expected), tolerance(DType::f32));
  options.bias = Tensor::zeros({4});
  expect_error([&] { ops::gemm(a, b, c, options); }, {"[gemm]", "argument 'bias' must have shape [3]"});
}

}  // namespace
}  // namespace wick::test

namespace wick::test {
namespace {

TEST(Gemm, BiasGradientSumsOpAOverK) {
  Generator gen = fresh_generator();
  const Tensor dy = randn(gen, {9, 5}), x = randn(gen, {9, 7});  // dW = dyᵀ·x, db = Σ_rows dy
  Tensor dw = Tensor::empty({5, 7});
  ops::GemmOptions options;
  options.transpose_a = true;
  options.bias_gradient = Tensor::full({5}, std::nan(""));
  ops::gemm(dy, x, dw, options);
  const auto dyv = values(dy);
  std::vector<double> expected(5, 0.0);
  for (int64_t r = 0; r < 9; ++r)
    for (int64_t j = 0; j < 5; ++j) expected[j] += dyv[r * 5 + j];
  EXPECT_LE(rel_error(options.bias_gradient, expected), tolerance(DType::f32));
  EXPECT_LE(rel_error(dw, values(ops::matmul(dy, x, true, false))), tolerance(DType::f32));
  options.bias_gradient = Tensor::zeros({5}, DType::bf16);
  expect_error([&] { ops::gemm(dy, x, dw, options); },
               {"[gemm]", "bias_gradient must be f32 for f32 operands"});
}

}  // namespace
}  // namespace wick::test

namespace wick::test {
namespace {

TEST(LoraLinear, PackedWeightsGiveTheSameResultAndGradients) {
  Generator gen = fresh_generator();
  const Tensor x = randn(gen, {3, 4, 24}, DType::f64), w = randn(gen, {17, 24}, DType::f64);
  const Tensor a = randn(gen, {4, 24}, DType::f64), b = randn(gen, {17, 4}, DType::f64);
  const auto p = ops::pack_lora_weights(w, a);
  EXPECT_EQ(p.storage.shape(), (Shape{21, 24}));
  const auto packed = ops::lora_linear(x, p.w, p.a, b, 1.5);
  const auto plain = ops::lora_linear(x, w, a, b, 1.5);
  EXPECT_LE(rel_error(packed.y, values(plain.y)), 1e-12);
  EXPECT_LE(rel_error(packed.xa, values(plain.xa)), 1e-12);
  const Tensor dy = randn(gen, {3, 4, 17}, DType::f64);
  const auto g1 = ops::lora_linear_backward(x, p.w, p.a, b, 1.5, packed.xa, dy);
  const auto g2 = ops::lora_linear_backward(x, w, a, b, 1.5, plain.xa, dy);
  EXPECT_LE(rel_error(g1.da, values(g2.da)), 1e-12);
  EXPECT_LE(rel_error(g1.db, values(g2.db)), 1e-12);
  EXPECT_LE(rel_error(g1.dx, values(g2.dx)), 1e-12);
}

}  // namespace
}  // namespace wick::test

namespace wick::test {
namespace {

TEST(Linear, MatchesMatmulPlusBiasAndChecksShapes) {
  Generator gen = fresh_generator();
  const Tensor x = randn(gen, {2, 3, 8}), w = randn(gen, {5, 8}), bias = randn(gen, {5});
  const Tensor y = ops::linear(x, w, bias);
  ASSERT_EQ(y.shape(), (Shape{2, 3, 5}));
  EXPECT_LE(rel_error(y, values(ops::add(ops::matmul(x, w, false, true), bias))), tolerance(DType::f32));
  expect_error([&] { ops::linear(x, randn(gen, {5, 7})); }, {"[linear]", "x must end in w's input size 7"});
}

}  // namespace
}  // namespace wick::test
