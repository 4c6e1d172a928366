// The LoRA linear layer composed from GEMMs on any device. Forward: xa = x·Aᵀ, y = x·Wᵀ (+ bias in the
// epilogue), then y += scale·xa·Bᵀ as a beta = 1 GEMM, so the low-rank update costs two thin GEMMs and no
// pass of its own. Backward: db = scale·dyᵀ·xa, dxa = scale·dy·B, da = dxaᵀ·x, dx = dy·W + dxa·A (again
// accumulated by beta = 1).
#include "wick/ops/lora.h"

#include "ops/check.h"
#include "wick/ops/gemm.h"

namespace wick::ops {
namespace {

struct Dims {
  int64_t tokens, in, out, rank;
};

Dims check_lora(std::string_view op, const Tensor& x, const Tensor& w, const Tensor& a, const Tensor& b,
                const Tensor& bias) {
  for (const auto& [name, t] :
       {NamedTensor{"x", &x}, NamedTensor{"w", &w}, NamedTensor{"a", &a}, NamedTensor{"b", &b}})
    check_floating(op, name, *t);
  check_same_dtype(op, {{"x", &x}, {"w", &w}, {"a", &a}, {"b", &b}, {"bias", &bias}});
  check_same_device(op, {{"x", &x}, {"w", &w}, {"a", &a}, {"b", &b}, {"bias", &bias}});
  check_rank(op, "w", w, 2);
  check_rank(op, "a", a, 2);
  check_rank(op, "b", b, 2);
  if (x.dim() < 1) fail(op, "x must have rank >= 1, got {}", x.str());
  const Dims d{x.numel() / std::max<int64_t>(x.size(-1), 1), x.size(-1), w.size(0), a.size(0)};
  if (w.size(1) != d.in) fail(op, "w must be [out, {}] for x={}, got {}", d.in, x.str(), w.str());
  check_shape(op, "a", a, {d.rank, d.in});
  check_shape(op, "b", b, {d.out, d.rank});
  if (bias.defined()) check_shape(op, "bias", bias, {d.out});
  return d;
}

Shape with_last(const Tensor& x, int64_t last) {
  Shape shape = x.shape();
  shape.back() = last;
  return shape;
}

GemmOptions options(bool ta, bool tb, double alpha = 1.0, double beta = 0.0) {
  GemmOptions o;
  o.transpose_a = ta;
  o.transpose_b = tb;
  o.alpha = alpha;
  o.beta = beta;
  return o;
}

// Whether a's rows directly follow w's rows in one dense buffer, as pack_lora_weights lays them out.
bool packed(const Tensor& w, const Tensor& a) {
  return w.storage() == a.storage() && w.is_contiguous() && a.is_contiguous() &&
         a.offset() == w.offset() + w.numel();
}

}  // namespace

PackedLoraWeights pack_lora_weights(const Tensor& w, const Tensor& a) {
  check_floating("pack_lora_weights", "w", w);
  check_floating("pack_lora_weights", "a", a);
  check_rank("pack_lora_weights", "w", w, 2);
  check_shape("pack_lora_weights", "a", a, {a.size(0), w.size(1)});
  check_same_dtype("pack_lora_weights", {{"w", &w}, {"a", &a}});
  check_same_device("pack_lora_weights", {{"w", &w}, {"a", &a}});
  PackedLoraWeights p;
  p.storage = Tensor::empty({w.size(0) + a.size(0), w.size(1)}, w.dtype(), w.device());
  p.w = p.storage.narrow(0, 0, w.size(0));
  p.a = p.storage.narrow(0, w.size(0), a.size(0));
  p.w.copy_(w);
  p.a.copy_(a);
  return p;
}

LoraLinearResult lora_linear(const Tensor& x, const Tensor& w, const Tensor& a, const Tensor& b, double scale,
                             const Tensor& bias) {
  const Dims d = check_lora("lora_linear", x, w, a, b, bias);
  const Tensor x2 = x.reshape({d.tokens, d.in});
  if (packed(w, a) && !bias.defined()) {
    // [y | xa] = x·[W; A]ᵀ in one GEMM, then y += scale·xa·Bᵀ.
    const Tensor wa(w.storage(), {d.out + d.rank, d.in}, {d.in, 1}, w.offset(), w.dtype());
    Tensor both = Tensor::empty({d.tokens, d.out + d.rank}, x.dtype(), x.device());
    gemm(x2, wa, both, options(false, true));
    Tensor y = both.narrow(1, 0, d.out), xa = both.narrow(1, d.out, d.rank);
    gemm(xa, b, y, options(false, true, scale, 1.0));
    Shape y_shape = with_last(x, d.out), xa_shape = with_last(x, d.rank);
    return {y.reshape(y_shape), xa.reshape(xa_shape)};
  }
  // The thin LoRA term first, written once; the frozen product then adds itself to it inside its GEMM. (The
  // other order reads and rewrites the whole output a second time in a pass of its own.)
  Tensor xa = Tensor::empty({d.tokens, d.rank}, x.dtype(), x.device());
  Tensor y = Tensor::empty({d.tokens, d.out}, x.dtype(), x.device());
  gemm(x2, a, xa, options(false, true));
  gemm(xa, b, y, options(false, true, scale));
  GemmOptions base = options(false, true, 1.0, 1.0);
  base.bias = bias;
  gemm(x2, w, y, base);
  return {y.view(with_last(x, d.out)), xa.view(with_last(x, d.rank))};
}

LoraLinearGrads lora_linear_backward(const Tensor& x, const Tensor& w, const Tensor& a, const Tensor& b,
                                     double scale, const Tensor& xa, const Tensor& dy, bool compute_dx) {
  constexpr std::string_view op = "lora_linear_backward";
  const Dims d = check_lora(op, x, w, a, b, Tensor());
  check_floating(op, "xa", xa);
  check_floating(op, "dy", dy);
  check_same_dtype(op, {{"x", &x}, {"xa", &xa}, {"dy", &dy}});
  check_same_device(op, {{"x", &x}, {"xa", &xa}, {"dy", &dy}});
  check_shape(op, "xa", xa, with_last(x, d.rank));
  check_shape(op, "dy", dy, with_last(x, d.out));
  const DType grad_dtype = x.dtype() == DType::f64 ? DType::f64 : DType::f32;
  const Tensor x2 = x.reshape({d.tokens, d.in}), xa2 = xa.reshape({d.tokens, d.rank});
  const Tensor dy2 = dy.reshape({d.tokens, d.out});
  LoraLinearGrads grads;
  grads.db = Tensor::empty({d.out, d.rank}, grad_dtype, x.device());
  gemm(dy2, xa2, grads.db, options(true, false, scale));
  Tensor dxa = Tensor::empty({d.tokens, d.rank}, x.dtype(), x.device());
  gemm(dy2, b, dxa, options(false, false, scale));
  grads.da = Tensor::empty({d.rank, d.in}, grad_dtype, x.device());
  gemm(dxa, x2, grads.da, options(true, false));
  if (compute_dx) {
    Tensor dx = Tensor::empty({d.tokens, d.in}, x.dtype(), x.device());
    gemm(dxa, a, dx, options(false, false));
    gemm(dy2, w, dx, options(false, false, 1.0, 1.0));
    grads.dx = dx.view(x.shape());
  }
  return grads;
}

}  // namespace wick::ops
