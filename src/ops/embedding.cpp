#include "wick/ops/embedding.h"

#include "backend/cpu/kernels.h"
#ifdef WICK_WITH_CUDA
#include "backend/cuda/kernels.h"
#endif
#include "ops/check.h"
#include "ops/dispatch.h"

namespace wick::ops {
namespace {

struct EmbeddingCall {
  const Tensor& weight;
  const Tensor& ids;
  const Tensor& out;
};

struct EmbeddingBackwardCall {
  const Tensor& ids;
  const Tensor& dy;
  const Tensor& dweight;
};

}  // namespace

namespace {

Tensor gather(const Tensor& weight, const Tensor& ids, bool check_ids) {
  constexpr std::string_view op = "embedding";
  check_defined(op, "weight", weight);
  check_rank(op, "weight", weight, 2);
  check_index_dtype(op, "ids", ids);
  check_same_device(op, {{"weight", &weight}, {"ids", &ids}});
  if (check_ids) check_index_range(op, "id", ids, weight.size(0));
  Shape shape = ids.shape();
  shape.push_back(weight.size(1));
  Tensor out = Tensor::empty(shape, weight.dtype(), weight.device());
  static const std::vector<Implementation<EmbeddingCall>> table = {
      {"cpu", "cpu tensors",
       [](const EmbeddingCall& c) {
         return on_cpu({&c.weight, &c.ids});
       },
       [](const EmbeddingCall& c) { cpu::embedding(c.weight, c.ids, c.out); }},
#ifdef WICK_WITH_CUDA
      {"cuda", "cuda tensors",
       [](const EmbeddingCall& c) {
         return on_cuda({&c.weight, &c.ids});
       },
       [](const EmbeddingCall& c) { cuda::embedding(c.weight, c.ids, c.out); }},
#endif
  };
  dispatch(op, table, EmbeddingCall{weight, ids, out}, describe({{"weight", &weight}, {"ids", &ids}}));
  return out;
}

}  // namespace

Tensor embedding(const Tensor& weight, const Tensor& ids) {
  return gather(weight, ids, true);
}

Tensor embedding_unchecked(const Tensor& weight, const Tensor& ids) {
  return gather(weight, ids, false);
}

Tensor embedding_backward(const Tensor& ids, const Tensor& dy, int64_t vocab) {
  constexpr std::string_view op = "embedding_backward";
  check_index_dtype(op, "ids", ids);
  check_floating(op, "dy", dy);
  check_same_device(op, {{"ids", &ids}, {"dy", &dy}});
  if (dy.dim() != ids.dim() + 1 || Shape(dy.shape().begin(), dy.shape().end() - 1) != ids.shape())
    fail(op, "dy must have shape ids.shape + [dim] = {} + [dim], got {}", shape_str(ids.shape()), dy.str());
  if (vocab <= 0) fail(op, "vocab must be > 0, got {}", vocab);
  check_index_range(op, "id", ids, vocab);
  Tensor dweight =
      Tensor::empty({vocab, dy.size(-1)}, dy.dtype() == DType::f64 ? DType::f64 : DType::f32, dy.device());
  static const std::vector<Implementation<EmbeddingBackwardCall>> table = {
      {"cpu", "cpu tensors",
       [](const EmbeddingBackwardCall& c) {
         return on_cpu({&c.ids, &c.dy});
       },
       [](const EmbeddingBackwardCall& c) { cpu::embedding_backward(c.ids, c.dy, c.dweight); }},
#ifdef WICK_WITH_CUDA
      {"cuda", "cuda tensors",
       [](const EmbeddingBackwardCall& c) {
         return on_cuda({&c.ids, &c.dy});
       },
       [](const EmbeddingBackwardCall& c) { cuda::embedding_backward(c.ids, c.dy, c.dweight); }},
#endif
  };
  dispatch(op, table, EmbeddingBackwardCall{ids, dy, dweight}, describe({{"ids", &ids}, {"dy", &dy}}));
  return dweight;
}

}  // namespace wick::ops
