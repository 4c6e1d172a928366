#include "wick/ops/gemm.h"

#include "backend/cpu/kernels.h"
#ifdef WICK_WITH_CUDA
#include "backend/cuda/kernels.h"
#endif
#include "ops/check.h"
#include "ops/dispatch.h"

namespace wick::ops {
namespace {

struct GemmCall {
  const Tensor& a;
  const Tensor& b;
  const Tensor& c;
  const GemmOptions& options;
};

const std::vector<Implementation<GemmCall>>& gemm_table() {
  static const std::vector<Implementation<GemmCall>> table = {
      {"openblas", "cpu tensors",
       [](const GemmCall& g) {
         return on_cpu({&g.a, &g.b, &g.c});
       },
       [](const GemmCall& g) { cpu::gemm(g.a, g.b, g.c, g.options); }},
#ifdef WICK_WITH_CUDA
      {"cuda_gemv",
       "cuda, no batch, A [M <= 4, K] and B [N, K] transposed, dense and 16-byte aligned, K a multiple "
       "of 16 bytes, one f32/f16/bf16 dtype, no TF32",
       [](const GemmCall& g) {
         return on_cuda({&g.a, &g.b, &g.c}) && cuda::gemv_applies(g.a, g.b, g.c, g.options);
       },
       [](const GemmCall& g) { cuda::gemv(g.a, g.b, g.c, g.options); }},
      {"cublaslt", "cuda tensors",
       [](const GemmCall& g) {
         return on_cuda({&g.a, &g.b, &g.c});
       },
       [](const GemmCall& g) { cuda::gemm(g.a, g.b, g.c, g.options); }},
#endif
  };
  return table;
}

}  // namespace

void gemm(const Tensor& a, const Tensor& b, const Tensor& c, const GemmOptions& options) {
  constexpr std::string_view op = "gemm";
  check_floating(op, "a", a);
  check_floating(op, "b", b);
  check_floating(op, "c", c);
  check_same_dtype(op, {{"a", &a}, {"b", &b}});
  check_same_device(op, {{"a", &a}, {"b", &b}, {"c", &c}});
  if (a.dim() < 2 || b.dim() < 2 || c.dim() < 2)
    fail(op, "operands must have rank >= 2, got a={}, b={}, c={}", a.str(), b.str(), c.str());
  const int64_t m = options.transpose_a ? a.size(-1) : a.size(-2);
  const int64_t k = options.transpose_a ? a.size(-2) : a.size(-1);
  const int64_t kb = options.transpose_b ? b.size(-1) : b.size(-2);
  const int64_t n = options.transpose_b ? b.size(-2) : b.size(-1);
  if (k != kb)
    fail(op, "inner dimensions differ: op(a) is {}×{} and op(b) is {}×{} (a={}{}, b={}{})", m, k, kb, n,
         a.str(), options.transpose_a ? " transposed" : "", b.str(),
         options.transpose_b ? " transposed" : "");
  Shape expected = broadcast_shapes(op, Shape(a.shape().begin(), a.shape().end() - 2),
                                    Shape(b.shape().begin(), b.shape().end() - 2));
  expected.push_back(m);
  expected.push_back(n);
  if (c.shape() != expected)
    fail(op, "c must have shape {} for a={} and b={}, got {}", shape_str(expected), a.str(), b.str(),
         c.str());
  if (options.bias.defined()) {
    check_shape(op, "bias", options.bias, {n});
    check_same_dtype(op, {{"c", &c}, {"bias", &options.bias}});
    check_same_device(op, {{"c", &c}, {"bias", &options.bias}});
  }
  if (options.bias_gradient.defined()) {
    const DType expected = a.dtype() == DType::f64 ? DType::f64 : DType::f32;
    if (c.dim() != 2) fail(op, "bias_gradient needs 2-D operands, got c={}", c.str());
    check_shape(op, "bias_gradient", options.bias_gradient, {m});
    if (options.bias_gradient.dtype() != expected)
      fail(op, "bias_gradient must be {} for {} operands, got {}", dtype_name(expected),
           dtype_name(a.dtype()), options.bias_gradient.str());
    check_same_device(op, {{"c", &c}, {"bias_gradient", &options.bias_gradient}});
  }
  if (options.allow_tf32 && a.dtype() != DType::f32)
    fail(op, "allow_tf32 applies to f32 operands only, got {}", a.str());
  dispatch(op, gemm_table(), GemmCall{a, b, c, options}, describe({{"a", &a}, {"b", &b}, {"c", &c}}));
}

Tensor linear(const Tensor& x, const Tensor& w, const Tensor& bias) {
  check_floating("linear", "x", x);
  check_floating("linear", "w", w);
  check_rank("linear", "w", w, 2);
  if (x.dim() < 1 || x.size(-1) != w.size(1))
    fail("linear", "x must end in w's input size {}, got x={} and w={}", w.size(1), x.str(), w.str());
  const int64_t in = w.size(1), out = w.size(0);
  const Tensor x2 = x.reshape({x.numel() / std::max<int64_t>(in, 1), in});
  Tensor y = Tensor::empty({x2.size(0), out}, x.dtype(), x.device());
  GemmOptions options;
  options.transpose_b = true;
  options.bias = bias;
  gemm(x2, w, y, options);
  Shape shape = x.shape();
  shape.back() = out;
  return y.view(shape);
}

Tensor matmul(const Tensor& a, const Tensor& b, bool transpose_a, bool transpose_b) {
  check_floating("matmul", "a", a);
  check_floating("matmul", "b", b);
  if (a.dim() < 2 || b.dim() < 2)
    fail("matmul", "operands must have rank >= 2, got a={}, b={}", a.str(), b.str());
  Shape shape = broadcast_shapes("matmul", Shape(a.shape().begin(), a.shape().end() - 2),
                                 Shape(b.shape().begin(), b.shape().end() - 2));
  shape.push_back(transpose_a ? a.size(-1) : a.size(-2));
  shape.push_back(transpose_b ? b.size(-2) : b.size(-1));
  Tensor c = Tensor::empty(shape, a.dtype(), a.device());
  GemmOptions options;
  options.transpose_a = transpose_a;
  options.transpose_b = transpose_b;
  gemm(a, b, c, options);
  return c;
}

}  // namespace wick::ops
