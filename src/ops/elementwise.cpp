#include "wick/ops/elementwise.h"

#include "backend/cpu/kernels.h"
#ifdef WICK_WITH_CUDA
#include "backend/cuda/kernels.h"
#endif
#include "ops/check.h"
#include "ops/dispatch.h"

namespace wick::ops {
namespace {

struct BinaryCall {
  cpu::Binary kind;
  const Tensor& a;
  const Tensor& b;
  const Tensor& out;
};

struct ScaleCall {
  const Tensor& x;
  double factor;
  const Tensor& out;
};

struct SumToShapeCall {
  const Tensor& x;
  const Tensor& out;
};

Tensor run_binary(std::string_view op, cpu::Binary kind, const Tensor& a, const Tensor& b) {
  check_floating(op, "a", a);
  check_floating(op, "b", b);
  check_same_dtype(op, {{"a", &a}, {"b", &b}});
  check_same_device(op, {{"a", &a}, {"b", &b}});
  Tensor out = Tensor::empty(broadcast_shapes(op, a.shape(), b.shape()), a.dtype(), a.device());
  static const std::vector<Implementation<BinaryCall>> table = {
      {"cpu", "cpu tensors",
       [](const BinaryCall& c) {
         return on_cpu({&c.a, &c.b});
       },
       [](const BinaryCall& c) { cpu::binary(c.kind, c.a, c.b, c.out); }},
#ifdef WICK_WITH_CUDA
      {"cuda", "cuda tensors",
       [](const BinaryCall& c) {
         return on_cuda({&c.a, &c.b});
       },
       [](const BinaryCall& c) { cuda::binary(c.kind, c.a, c.b, c.out); }},
#endif
  };
  dispatch(op, table, BinaryCall{kind, a, b, out}, describe({{"a", &a}, {"b", &b}}));
  return out;
}

}  // namespace

Tensor add(const Tensor& a, const Tensor& b) {
  return run_binary("add", cpu::Binary::add, a, b);
}
Tensor sub(const Tensor& a, const Tensor& b) {
  return run_binary("sub", cpu::Binary::sub, a, b);
}
Tensor mul(const Tensor& a, const Tensor& b) {
  return run_binary("mul", cpu::Binary::mul, a, b);
}
Tensor div(const Tensor& a, const Tensor& b) {
  return run_binary("div", cpu::Binary::div, a, b);
}

Tensor scale(const Tensor& x, double factor) {
  check_floating("scale", "x", x);
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  static const std::vector<Implementation<ScaleCall>> table = {
      {"cpu", "a cpu tensor", [](const ScaleCall& c) { return on_cpu({&c.x}); },
       [](const ScaleCall& c) { cpu::scale(c.x, c.factor, c.out); }},
#ifdef WICK_WITH_CUDA
      {"cuda", "a cuda tensor", [](const ScaleCall& c) { return on_cuda({&c.x}); },
       [](const ScaleCall& c) { cuda::scale(c.x, c.factor, c.out); }},
#endif
  };
  dispatch("scale", table, ScaleCall{x, factor, out}, x.str());
  return out;
}

Tensor sum_to_shape(const Tensor& x, const Shape& shape) {
  constexpr std::string_view op = "sum_to_shape";
  check_floating(op, "x", x);
  if (broadcast_shapes(op, shape, x.shape()) != x.shape())
    fail(op, "shape {} does not broadcast to x={}, so x cannot be summed down to it", shape_str(shape),
         x.str());
  Tensor out = Tensor::empty(shape, x.dtype() == DType::f64 ? DType::f64 : DType::f32, x.device());
  static const std::vector<Implementation<SumToShapeCall>> table = {
      {"cpu", "a cpu tensor", [](const SumToShapeCall& c) { return on_cpu({&c.x}); },
       [](const SumToShapeCall& c) { cpu::sum_to_shape(c.x, c.out); }},
#ifdef WICK_WITH_CUDA
      {"cuda", "a cuda tensor", [](const SumToShapeCall& c) { return on_cuda({&c.x}); },
       [](const SumToShapeCall& c) { cuda::sum_to_shape(c.x, c.out); }},
#endif
  };
  dispatch(op, table, SumToShapeCall{x, out}, x.str());
  return out;
}

}  // namespace wick::ops
