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

// The SwiGLU backward with the MLP's LoRA weight gradients, from their definitions with plain loops:
// dgate = dh·up·silu'(gate), dup = dh·silu(gate), h = silu(gate)·up; db_gate = scale·dgateᵀ·xa_gate,
// db_up = scale·dupᵀ·xa_up, da_down = dxa_downᵀ·h.
struct SwigluLoraReference {
  std::vector<double> dgate, dup, db_gate, db_up, da_down;
};
SwigluLoraReference swiglu_lora_reference(const Tensor& gate, const Tensor& up, const Tensor& dh,
                                          const Tensor& xa_gate, const Tensor& xa_up, const Tensor& dxa_down,
                                          double scale) {
  const int64_t rows = gate.size(0), cols = gate.size(1), rank = xa_gate.size(1);
  const auto g = values(gate), u = values(up), d = values(dh), xg = values(xa_gate), xu = values(xa_up),
             xd = values(dxa_down);
  SwigluLoraReference r;
  r.dgate.resize(rows * cols);
  r.dup.resize(rows * cols);
  std::vector<double> h(rows * cols);
  for (int64_t i = 0; i < rows * cols; ++i) {
    const double sig = 1.0 / (1.0 + std::exp(-g[i]));
    r.dgate[i] = d[i] * u[i] * sig * (1.0 + g[i] * (1.0 - sig));
    r.dup[i] = d[i] * g[i] * sig;
    h[i] = g[i] * sig * u[i];
  }
  r.db_gate.assign(cols * rank, 0.0);
  r.db_up.assign(cols * rank, 0.0);
  r.da_down.assign(rank * cols, 0.0);
  for (int64_t n = 0; n < rows; ++n)
    for (int64_t c = 0; c < cols; ++c)
      for (int64_t k = 0; k < rank; ++k) {
        r.db_gate[c * rank + k] += scale * r.dgate[n * cols + c] * xg[n * rank + k];
        r.db_up[c * rank + k] += scale * r.dup[n * cols + c] * xu[n * rank + k];
        r.da_down[k * cols + c] += xd[n * rank + k] * h[n * cols + c];
      }
  return r;
}

// Strided operands (gate and up as halves of one product, the thin inputs as columns of a wider buffer),
// accumulation into gradients that hold values, and h kept by the caller or formed again.
TEST(SwigluLoraBackward, MatchesReference) {
  Generator gen = fresh_generator();
  for (DType dtype : {DType::f64, DType::f32, DType::bf16}) {
    const int64_t rows = 13, cols = 24, rank = 4;
    const DType grad_dtype = dtype == DType::f64 ? DType::f64 : DType::f32;
    const Tensor packed = randn(gen, {rows, 2 * cols}, dtype, 2.0), dh = randn(gen, {rows, cols}, dtype);
    const Tensor thin = randn(gen, {rows, 10 + 2 * rank}, dtype), dxa_down = randn(gen, {rows, rank}, dtype);
    const Tensor gate = packed.narrow(1, 0, cols), up = packed.narrow(1, cols, cols);
    const Tensor xa_gate = thin.narrow(1, 10, rank), xa_up = thin.narrow(1, 10 + rank, rank);
    const auto expected = swiglu_lora_reference(gate, up, dh, xa_gate, xa_up, dxa_down, 0.5);
    const Tensor kept_h = ops::swiglu(gate, up);
    for (bool accumulate : {false, true}) {
      const Tensor h = accumulate ? kept_h : Tensor();
      const Tensor out = Tensor::empty({rows, 2 * cols}, dtype);
      const ops::SwigluGrads into{out.narrow(1, 0, cols), out.narrow(1, cols, cols)};
      const Tensor start = randn(gen, {3, cols * rank}, grad_dtype);
      const ops::SwigluLoraGrads grads{start.select(0, 0).clone().view({cols, rank}),
                                       start.select(0, 1).clone().view({cols, rank}),
                                       start.select(0, 2).clone().view({rank, cols})};
      ops::swiglu_lora_backward(gate, up, dh, xa_gate, xa_up, dxa_down, 0.5, into, grads, accumulate, h);
      const auto with_start = [&](const std::vector<double>& v, int64_t which) {
        std::vector<double> sum = v;
        const auto s = values(start.select(0, which));
        if (accumulate)
          for (size_t i = 0; i < sum.size(); ++i) sum[i] += s[i];
        return sum;
      };
      const double tol = 3 * tolerance(dtype);
      EXPECT_LE(rel_error(into.dgate, expected.dgate), tol) << dtype_name(dtype);
      EXPECT_LE(rel_error(into.dup, expected.dup), tol) << dtype_name(dtype);
      EXPECT_LE(rel_error(grads.db_gate, with_start(expected.db_gate, 0)), tol) << dtype_name(dtype);
      EXPECT_LE(rel_error(grads.db_up, with_start(expected.db_up, 1)), tol) << dtype_name(dtype);
      EXPECT_LE(rel_error(grads.da_down, with_start(expected.da_down, 2)), tol) << dtype_name(dtype);
    }
  }
}

TEST(SwigluLoraBackward, BadShapesAreClearErrors) {
  const Tensor gate = Tensor::zeros({6, 8}), thin = Tensor::zeros({6, 2});
  const ops::SwigluGrads into{Tensor::zeros({6, 8}), Tensor::zeros({6, 8})};
  expect_error(
      [&] {
        ops::swiglu_lora_backward(gate, gate, gate, thin, thin, thin, 1.0, into,
                                  {Tensor::zeros({8, 2}), Tensor::zeros({8, 2}), Tensor::zeros({8, 2})},
                                  false);
      },
      {"[swiglu_lora_backward]", "argument 'da_down' must have shape [2, 8]"});
  expect_error(
      [&] {
        ops::swiglu_lora_backward(gate, gate, Tensor::zeros({6, 7}), thin, thin, thin, 1.0, into,
                                  {Tensor::zeros({8, 2}), Tensor::zeros({8, 2}), Tensor::zeros({2, 8})},
                                  false);
      },
      {"[swiglu_lora_backward]", "argument 'dh' must have shape [6, 8]"});
  expect_error(
      [&] {
        ops::swiglu_lora_backward(gate, gate, gate, thin, thin, thin, 1.0, into,
                                  {Tensor::zeros({8, 2}, DType::f64), Tensor::zeros({8, 2}, DType::f64),
                                   Tensor::zeros({2, 8}, DType::f64)},
                                  false);
      },
      {"[swiglu_lora_backward]", "gradients must be f32"});
  expect_error(
      [&] {
        ops::swiglu_lora_backward(gate, gate, gate, thin, thin, thin, 1.0, into,
                                  {Tensor::zeros({8, 2}), Tensor::zeros({8, 2}), Tensor::zeros({2, 8})},
                                  false, Tensor::zeros({6, 9}));
      },
      {"[swiglu_lora_backward]", "argument 'h' must have shape [6, 8]"});
  // The one-pass kernel is CUDA's: on the cpu the caller keeps h.
  EXPECT_FALSE(ops::swiglu_lora_backward_in_one_pass(Tensor::zeros({6, 8}, DType::bf16), 16));
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
