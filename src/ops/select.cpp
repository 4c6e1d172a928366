#include "wick/ops/select.h"

#include "backend/cpu/kernels.h"
#ifdef WICK_WITH_CUDA
#include "backend/cuda/kernels.h"
#endif
#include "ops/check.h"
#include "ops/dispatch.h"

namespace wick::ops {
namespace {

struct SelectCall {
  const Tensor& x;
  int64_t k;
  const Tensor& values;
  const Tensor& indices;
};

}  // namespace

Tensor argmax(const Tensor& x) {
  constexpr std::string_view op = "argmax";
  check_floating(op, "x", x);
  if (x.dim() == 0 || x.size(-1) == 0) fail(op, "needs a non-empty last axis, got {}", x.str());
  Tensor indices = Tensor::empty(Shape(x.shape().begin(), x.shape().end() - 1), DType::i64, x.device());
  static const std::vector<Implementation<SelectCall>> table = {
      {"cpu", "a cpu tensor", [](const SelectCall& c) { return on_cpu({&c.x}); },
       [](const SelectCall& c) { cpu::argmax(c.x, c.indices); }},
#ifdef WICK_WITH_CUDA
      {"cuda", "a cuda tensor", [](const SelectCall& c) { return on_cuda({&c.x}); },
       [](const SelectCall& c) { cuda::argmax(c.x, c.indices); }},
#endif
  };
  dispatch(op, table, SelectCall{x, 1, Tensor(), indices}, x.str());
  return indices;
}

TopK topk(const Tensor& x, int64_t k) {
  constexpr std::string_view op = "topk";
  check_floating(op, "x", x);
  if (x.dim() == 0) fail(op, "needs a tensor of rank >= 1, got {}", x.str());
  if (k < 1 || k > x.size(-1)) fail(op, "k must be in 1..{} for x={}, got {}", x.size(-1), x.str(), k);
  Shape shape = x.shape();
  shape.back() = k;
  TopK result{Tensor::empty(shape, x.dtype(), x.device()), Tensor::empty(shape, DType::i64, x.device())};
  static const std::vector<Implementation<SelectCall>> table = {
      {"cpu", "a cpu tensor", [](const SelectCall& c) { return on_cpu({&c.x}); },
       [](const SelectCall& c) { cpu::topk(c.x, c.k, c.values, c.indices); }},
#ifdef WICK_WITH_CUDA
      {"cuda", "a cuda tensor", [](const SelectCall& c) { return on_cuda({&c.x}); },
       [](const SelectCall& c) { cuda::topk(c.x, c.k, c.values, c.indices); }},
#endif
  };
  dispatch(op, table, SelectCall{x, k, result.values, result.indices}, x.str());
  return result;
}

}  // namespace wick::ops
