#include "wick/ops/encoder.h"

#include "backend/cpu/pool.h"
#ifdef WICK_WITH_CUDA
#include "backend/cuda/encoder_fused.h"
#endif
#include "ops/check.h"
#include "ops/dispatch.h"
#include "wick/ops/elementwise.h"
#include "wick/ops/embedding.h"
#include "wick/ops/norm.h"

namespace wick::ops {
namespace {

struct EmbeddingSumCall {
  const Tensor& word_table;
  const Tensor& ids;
  const Tensor& type_table;
  const Tensor& types;
  const Tensor& position_table;
  const Tensor& positions;
  const Tensor& norm_weight;
  const Tensor& norm_bias;
  double eps;
  Tensor& out;
};

struct MeanPoolCall {
  const Tensor& x;
  const Tensor& lengths;
  const Tensor& out;
};

void check_i64(std::string_view op, std::string_view name, const Tensor& t) {
  check_defined(op, name, t);
  if (t.dtype() != DType::i64) fail(op, "argument '{}' must be i64, got {}", name, t.str());
}

}  // namespace

Tensor embedding_sum_layer_norm(const Tensor& word_table, const Tensor& ids, const Tensor& type_table,
                                const Tensor& types, const Tensor& position_table, const Tensor& positions,
                                const Tensor& norm_weight, const Tensor& norm_bias, double eps) {
  constexpr std::string_view op = "embedding_sum_layer_norm";
  check_floating(op, "word_table", word_table);
  check_rank(op, "word_table", word_table, 2);
  const int64_t hidden = word_table.size(1);
  for (const auto& [name, table] :
       {NamedTensor{"type_table", &type_table}, {"position_table", &position_table}}) {
    check_floating(op, name, *table);
    check_rank(op, name, *table, 2);
    if (table->size(1) != hidden)
      fail(op, "{} must have word_table's {} columns, got {}", name, hidden, table->str());
  }
  for (const auto& [name, t] : {NamedTensor{"norm_weight", &norm_weight}, {"norm_bias", &norm_bias}})
    if (t->defined()) check_shape(op, name, *t, {hidden});
  check_same_dtype(op, {{"word_table", &word_table},
                        {"type_table", &type_table},
                        {"position_table", &position_table},
                        {"norm_weight", &norm_weight},
                        {"norm_bias", &norm_bias}});
  check_i64(op, "ids", ids);
  check_rank(op, "ids", ids, 2);
  check_i64(op, "types", types);
  check_shape(op, "types", types, ids.shape());
  check_i64(op, "positions", positions);
  check_shape(op, "positions", positions, {ids.size(1)});
  if (!(eps >= 0)) fail(op, "eps must be >= 0, got {}", eps);
  check_same_device(op, {{"word_table", &word_table},
                         {"ids", &ids},
                         {"type_table", &type_table},
                         {"types", &types},
                         {"position_table", &position_table},
                         {"positions", &positions},
                         {"norm_weight", &norm_weight},
                         {"norm_bias", &norm_bias}});
  static const std::vector<Implementation<EmbeddingSumCall>> table = {
#ifdef WICK_WITH_CUDA
      {"cuda_fused",
       "cuda, one f32/f16/bf16 dtype, contiguous 16-byte aligned tables and norm, rows of at most 256 "
       "16-byte "
       "vectors, dense ids, types and positions",
       [](const EmbeddingSumCall& c) {
         return on_cuda({&c.word_table, &c.ids, &c.type_table, &c.types, &c.position_table, &c.positions,
                         &c.norm_weight, &c.norm_bias}) &&
                cuda::embedding_sum_layer_norm_applies(c.word_table, c.ids, c.type_table, c.types,
                                                       c.position_table, c.positions, c.norm_weight,
                                                       c.norm_bias);
       },
       [](const EmbeddingSumCall& c) {
         c.out = Tensor::empty({c.ids.size(0), c.ids.size(1), c.word_table.size(1)}, c.word_table.dtype(),
                               c.word_table.device());
         cuda::embedding_sum_layer_norm(c.word_table, c.ids, c.type_table, c.types, c.position_table,
                                        c.positions, c.norm_weight, c.norm_bias, c.eps, c.out);
       }},
#endif
      {"composed", "nothing (three embedding lookups, two adds, then layer_norm, on any device)",
       [](const EmbeddingSumCall&) { return true; },
       [](const EmbeddingSumCall& c) {
         const Tensor sum =
             add(add(embedding_unchecked(c.word_table, c.ids), embedding_unchecked(c.type_table, c.types)),
                 embedding_unchecked(c.position_table, c.positions));
         c.out = layer_norm(sum, c.norm_weight, c.norm_bias, c.eps);
       }},
  };
  Tensor out;
  dispatch(op, table,
           EmbeddingSumCall{word_table, ids, type_table, types, position_table, positions, norm_weight,
                            norm_bias, eps, out},
           describe({{"word_table", &word_table}, {"ids", &ids}, {"norm_weight", &norm_weight}}));
  return out;
}

Tensor mean_pool(const Tensor& x, const Tensor& lengths) {
  constexpr std::string_view op = "mean_pool";
  check_floating(op, "x", x);
  check_rank(op, "x", x, 3);
  check_i64(op, "lengths", lengths);
  check_shape(op, "lengths", lengths, {x.size(0)});
  check_same_device(op, {{"x", &x}, {"lengths", &lengths}});
  const Tensor out =
      Tensor::empty({x.size(0), x.size(2)}, x.dtype() == DType::f64 ? DType::f64 : DType::f32, x.device());
  static const std::vector<Implementation<MeanPoolCall>> table = {
      {"cpu", "cpu tensors",
       [](const MeanPoolCall& c) {
         return on_cpu({&c.x, &c.lengths});
       },
       [](const MeanPoolCall& c) { cpu::mean_pool(c.x, c.lengths, c.out); }},
#ifdef WICK_WITH_CUDA
      {"cuda", "cuda tensors",
       [](const MeanPoolCall& c) {
         return on_cuda({&c.x, &c.lengths});
       },
       [](const MeanPoolCall& c) { cuda::mean_pool(c.x, c.lengths, c.out); }},
#endif
  };
  dispatch(op, table, MeanPoolCall{x, lengths, out}, describe({{"x", &x}, {"lengths", &lengths}}));
  return out;
}

}  // namespace wick::ops
