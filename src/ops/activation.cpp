#include "wick/ops/activation.h"

#include "backend/cpu/kernels.h"
#ifdef WICK_WITH_CUDA
#include "backend/cuda/kernels.h"
#endif
#include "ops/check.h"
#include "ops/dispatch.h"

namespace wick::ops {
namespace {

struct UnaryCall {
  cpu::Unary kind;
  const Tensor& x;
  const Tensor& dy;  // undefined for the forward
  const Tensor& out;
};

struct SwigluCall {
  const Tensor& gate;
  const Tensor& up;
  const Tensor& dy;  // undefined for the forward
  const Tensor& out0;
  const Tensor& out1;
};

Tensor run_unary(std::string_view op, cpu::Unary kind, const Tensor& x, const Tensor& dy) {
  check_floating(op, "x", x);
  if (dy.defined()) {
    check_floating(op, "dy", dy);
    check_shape(op, "dy", dy, x.shape());
    check_same_dtype(op, {{"x", &x}, {"dy", &dy}});
    check_same_device(op, {{"x", &x}, {"dy", &dy}});
  }
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  static const std::vector<Implementation<UnaryCall>> table = {
      {"cpu", "cpu tensors",
       [](const UnaryCall& c) {
         return on_cpu({&c.x, &c.dy});
       },
       [](const UnaryCall& c) {
         if (c.dy.defined()) {
           cpu::unary_backward(c.kind, c.x, c.dy, c.out);
         } else {
           cpu::unary(c.kind, c.x, c.out);
         }
       }},
#ifdef WICK_WITH_CUDA
      {"cuda", "cuda tensors",
       [](const UnaryCall& c) {
         return on_cuda({&c.x, &c.dy});
       },
       [](const UnaryCall& c) {
         if (c.dy.defined()) {
           cuda::unary_backward(c.kind, c.x, c.dy, c.out);
         } else {
           cuda::unary(c.kind, c.x, c.out);
         }
       }},
#endif
  };
  dispatch(op, table, UnaryCall{kind, x, dy, out}, x.str());
  return out;
}

cpu::Unary gelu_kind(GeluApproximation approximation) {
  return approximation == GeluApproximation::tanh ? cpu::Unary::gelu_tanh : cpu::Unary::gelu_erf;
}

void run_swiglu(std::string_view op, const Tensor& gate, const Tensor& up, const Tensor& dy,
                const Tensor& out0, const Tensor& out1) {
  check_floating(op, "gate", gate);
  check_floating(op, "up", up);
  check_shape(op, "up", up, gate.shape());
  check_same_dtype(op, {{"gate", &gate}, {"up", &up}, {"dy", &dy}});
  check_same_device(op, {{"gate", &gate}, {"up", &up}, {"dy", &dy}});
  if (dy.defined()) check_shape(op, "dy", dy, gate.shape());
  static const std::vector<Implementation<SwigluCall>> table = {
      {"cpu", "cpu tensors",
       [](const SwigluCall& c) {
         return on_cpu({&c.gate, &c.up, &c.dy});
       },
       [](const SwigluCall& c) {
         if (c.dy.defined()) {
           cpu::swiglu_backward(c.gate, c.up, c.dy, c.out0, c.out1);
         } else {
           cpu::swiglu(c.gate, c.up, c.out0);
         }
       }},
#ifdef WICK_WITH_CUDA
      {"cuda", "cuda tensors",
       [](const SwigluCall& c) {
         return on_cuda({&c.gate, &c.up, &c.dy});
       },
       [](const SwigluCall& c) {
         if (c.dy.defined()) {
           cuda::swiglu_backward(c.gate, c.up, c.dy, c.out0, c.out1);
         } else {
           cuda::swiglu(c.gate, c.up, c.out0);
         }
       }},
#endif
  };
  dispatch(op, table, SwigluCall{gate, up, dy, out0, out1}, describe({{"gate", &gate}, {"up", &up}}));
}

}  // namespace

Tensor silu(const Tensor& x) {
  return run_unary("silu", cpu::Unary::silu, x, Tensor());
}
Tensor silu_backward(const Tensor& x, const Tensor& dy) {
  check_defined("silu_backward", "dy", dy);
  return run_unary("silu_backward", cpu::Unary::silu, x, dy);
}
Tensor gelu(const Tensor& x, GeluApproximation approximation) {
  return run_unary("gelu", gelu_kind(approximation), x, Tensor());
}
Tensor gelu_backward(const Tensor& x, const Tensor& dy, GeluApproximation approximation) {
  check_defined("gelu_backward", "dy", dy);
  return run_unary("gelu_backward", gelu_kind(approximation), x, dy);
}

Tensor swiglu(const Tensor& gate, const Tensor& up) {
  check_defined("swiglu", "gate", gate);
  Tensor y = Tensor::empty(gate.shape(), gate.dtype(), gate.device());
  run_swiglu("swiglu", gate, up, Tensor(), y, Tensor());
  return y;
}

SwigluGrads swiglu_backward(const Tensor& gate, const Tensor& up, const Tensor& dy) {
  check_defined("swiglu_backward", "gate", gate);
  return swiglu_backward(gate, up, dy,
                         {Tensor::empty(gate.shape(), gate.dtype(), gate.device()),
                          Tensor::empty(gate.shape(), gate.dtype(), gate.device())});
}

SwigluGrads swiglu_backward(const Tensor& gate, const Tensor& up, const Tensor& dy, const SwigluGrads& into) {
  constexpr std::string_view op = "swiglu_backward";
  check_defined(op, "gate", gate);
  check_defined(op, "dy", dy);
  check_defined(op, "dgate", into.dgate);
  check_defined(op, "dup", into.dup);
  check_shape(op, "dgate", into.dgate, gate.shape());
  check_shape(op, "dup", into.dup, gate.shape());
  check_same_dtype(op, {{"gate", &gate}, {"dgate", &into.dgate}, {"dup", &into.dup}});
  check_same_device(op, {{"gate", &gate}, {"dgate", &into.dgate}, {"dup", &into.dup}});
  run_swiglu(op, gate, up, dy, into.dgate, into.dup);
  return into;
}

}  // namespace wick::ops
