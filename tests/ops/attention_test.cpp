#include <gtest/gtest.h>

#include <cmath>

#include "support/reference.h"
#include "support/test_util.h"
#include "wick/wick.h"

namespace wick {
namespace {

struct Inputs {
  Tensor q, k, v;
};

Inputs make_inputs(Generator& gen, int64_t batch, int64_t q_heads, int64_t kv_heads, int64_t q_len,
                   int64_t kv_len, int64_t dim, DType dtype) {
  return {test::randn(gen, {batch, q_heads, q_len, dim}, dtype),
          test::non_contiguous(test::randn(gen, {batch, kv_heads, kv_len, dim}, dtype)),
          test::randn(gen, {batch, kv_heads, kv_len, dim}, dtype)};
}

// The reference spec for these tensors and options, resolving the defaults the way the header documents them.
ref::AttentionSpec spec_for(const Inputs& in, const ops::AttentionOptions& options) {
  ref::AttentionSpec spec{in.q.size(0), in.q.size(1), in.k.size(1), in.q.size(2), in.k.size(2), in.q.size(3)};
  spec.causal = options.causal;
  spec.query_offset = options.query_offset >= 0 ? options.query_offset : spec.kv_len - spec.q_len;
  if (options.kv_lengths.defined()) spec.kv_lengths = options.kv_lengths.to_vector<int64_t>();
  spec.scale = std::isnan(options.scale) ? 1.0 / std::sqrt(static_cast<double>(spec.dim)) : options.scale;
  return spec;
}

// Runs forward and backward and compares out, lse, dq, dk and dv with the float64 reference.
void check_against_reference(Generator& gen, const Inputs& in, const ops::AttentionOptions& options) {
  const DType dtype = in.q.dtype();
  const ref::AttentionSpec spec = spec_for(in, options);
  const ref::Vec q = test::values(in.q), k = test::values(in.k), v = test::values(in.v);
  const auto result = ops::attention(in.q, in.k, in.v, options);
  const auto expected = ref::attention(q, k, v, spec);
  EXPECT_EQ(result.out.dtype(), dtype);
  EXPECT_EQ(result.lse.dtype(), dtype == DType::f64 ? DType::f64 : DType::f32);
  EXPECT_EQ(result.lse.shape(), (Shape{spec.batch, spec.q_heads, spec.q_len}));
  ref::expect_close(result.out, expected.out, test::tolerance(dtype));
  ref::expect_close(result.lse, expected.lse, dtype == DType::f64 ? 1e-12 : 1e-5);

  const Tensor dout = test::non_contiguous(test::randn(gen, in.q.shape(), dtype));
  const auto grads = ops::attention_backward(in.q, in.k, in.v, result.out, result.lse, dout, options);
  const auto expected_grads = ref::attention_backward(q, k, v, test::values(dout), spec);
  ref::expect_close(grads.dq, expected_grads.dq, test::tolerance(dtype));
  ref::expect_close(grads.dk, expected_grads.dk, test::tolerance(dtype));
  ref::expect_close(grads.dv, expected_grads.dv, test::tolerance(dtype));
}

TEST(Attention, CausalAndNotWithGroupedHeads) {
  Generator gen = test::fresh_generator();
  SCOPED_TRACE(ref::seed_of(gen));
  for (DType dtype : {DType::f32, DType::f64, DType::bf16, DType::f16}) {
    for (int64_t ratio : {1, 2, 7}) {
      for (bool causal : {true, false}) {
        SCOPED_TRACE(testing::Message() << dtype_name(dtype) << " ratio " << ratio << " causal " << causal);
        ops::AttentionOptions options;
        options.causal = causal;
        check_against_reference(gen, make_inputs(gen, 2, 2 * ratio, 2, 9, 9, 12, dtype), options);
      }
    }
  }
}

TEST(Attention, KvCacheOffsets) {
  Generator gen = test::fresh_generator();
  SCOPED_TRACE(ref::seed_of(gen));
  for (DType dtype : {DType::f32, DType::f64, DType::bf16}) {
    // Default: the 3 queries are the last 3 of 11 tokens (offset 8); explicit offsets place them elsewhere.
    for (int64_t offset : {-1, 0, 2, 8, 20}) {
      SCOPED_TRACE(testing::Message() << dtype_name(dtype) << " query_offset " << offset);
      ops::AttentionOptions options;
      options.query_offset = offset;
      check_against_reference(gen, make_inputs(gen, 2, 14, 2, 3, 11, 8, dtype), options);
    }
  }
  // A single new token (decode step) sees the whole cache.
  const Inputs in = make_inputs(gen, 1, 4, 4, 1, 6, 16, DType::f64);
  check_against_reference(gen, in, {});
  ops::AttentionOptions not_causal;
  not_causal.causal = false;
  EXPECT_LE(
      relative_error(ops::attention(in.q, in.k, in.v).out, ops::attention(in.q, in.k, in.v, not_causal).out),
      1e-15);
}

TEST(Attention, KvLengthsMaskPaddedKeys) {
  Generator gen = test::fresh_generator();
  SCOPED_TRACE(ref::seed_of(gen));
  for (DType index_type : {DType::i32, DType::i64}) {
    for (bool causal : {true, false}) {
      SCOPED_TRACE(testing::Message() << dtype_name(index_type) << " causal " << causal);
      ops::AttentionOptions options;
      options.causal = causal;
      options.kv_lengths = Tensor::from_vector<int64_t>({7, 3, 0}, {3}).to(index_type);
      const Inputs in = make_inputs(gen, 3, 4, 2, 5, 7, 8, DType::f32);
      check_against_reference(gen, in, options);
      // Batch 2 has no keys at all: zero output and an lse of −∞, not NaN.
      const auto result = ops::attention(in.q, in.k, in.v, options);
      for (double o : test::values(result.out.select(0, 2))) EXPECT_EQ(o, 0.0);
      for (double l : test::values(result.lse.select(0, 2))) EXPECT_EQ(l, -ref::kInf);
    }
  }
}

TEST(Attention, CustomScaleAndSizeOneEdges) {
  Generator gen = test::fresh_generator();
  SCOPED_TRACE(ref::seed_of(gen));
  ops::AttentionOptions options;
  options.scale = 0.3;
  check_against_reference(gen, make_inputs(gen, 2, 3, 1, 4, 4, 5, DType::f32), options);
  options.causal = false;
  options.scale = -1.25;
  check_against_reference(gen, make_inputs(gen, 1, 2, 2, 6, 3, 7, DType::f64), options);
  check_against_reference(gen, make_inputs(gen, 1, 1, 1, 1, 1, 1, DType::f32), {});
  check_against_reference(gen, make_inputs(gen, 1, 7, 1, 1, 1, 3, DType::bf16), {});
}

TEST(Attention, HeadsMajorViewOfSequenceMajorTensors) {
  // q/k/v usually come from [batch, seq, heads, dim] projections, permuted to heads-major without a copy.
  Generator gen = test::fresh_generator();
  SCOPED_TRACE(ref::seed_of(gen));
  const Inputs in = {test::randn(gen, {2, 5, 6, 8}, DType::f32).permute({0, 2, 1, 3}),
                     test::randn(gen, {2, 5, 3, 8}, DType::f32).permute({0, 2, 1, 3}),
                     test::randn(gen, {2, 5, 3, 8}, DType::f32).permute({0, 2, 1, 3})};
  ASSERT_FALSE(in.q.is_contiguous());
  check_against_reference(gen, in, {});
}

TEST(Attention, BackwardMatchesFiniteDifferences) {
  Generator gen = test::fresh_generator();
  SCOPED_TRACE(ref::seed_of(gen));
  for (int config = 0; config < 3; ++config) {
    SCOPED_TRACE(testing::Message() << "config " << config);
    ops::AttentionOptions options;
    Inputs in;
    if (config == 0) {
      in = make_inputs(gen, 1, 2, 2, 5, 5, 4, DType::f64);  // causal, square
    } else if (config == 1) {
      in = make_inputs(gen, 2, 4, 2, 3, 6, 4, DType::f64);  // GQA, KV-cache offset, padding
      options.kv_lengths = Tensor::from_vector<int32_t>({6, 4}, {2});
      options.scale = 0.7;
    } else {
      in = make_inputs(gen, 1, 3, 1, 4, 5, 3, DType::f64);  // not causal, 3 query heads on 1 kv head
      options.causal = false;
    }
    const Tensor dout = test::randn(gen, in.q.shape(), DType::f64);
    const auto result = ops::attention(in.q, in.k, in.v, options);
    const auto grads = ops::attention_backward(in.q, in.k, in.v, result.out, result.lse, dout, options);
    ref::expect_matches_finite_difference(
        [&](const Tensor& t) { return ops::attention(t, in.k, in.v, options).out; }, in.q, dout, grads.dq);
    ref::expect_matches_finite_difference(
        [&](const Tensor& t) { return ops::attention(in.q, t, in.v, options).out; }, in.k, dout, grads.dk);
    ref::expect_matches_finite_difference(
        [&](const Tensor& t) { return ops::attention(in.q, in.k, t, options).out; }, in.v, dout, grads.dv);
  }
}

TEST(Attention, BadInputs) {
  Generator gen = test::fresh_generator();
  const Inputs in = make_inputs(gen, 2, 4, 2, 3, 5, 8, DType::f32);
  test::expect_error([&] { ops::attention(in.q.select(0, 0), in.k, in.v); },
                     {"[attention]", "argument 'q' must have rank 4"});
  test::expect_error(
      [&] {
        ops::attention(in.q, in.k, test::randn(gen, {2, 2, 4, 8}));
      },
      {"[attention]", "argument 'v' must have shape [2, 2, 5, 8]"});
  test::expect_error(
      [&] {
        ops::attention(in.q, test::randn(gen, {2, 2, 5, 4}), test::randn(gen, {2, 2, 5, 4}));
      },
      {"[attention]", "head_dim"});
  test::expect_error(
      [&] {
        ops::attention(in.q, test::randn(gen, {1, 2, 5, 8}), test::randn(gen, {1, 2, 5, 8}));
      },
      {"[attention]", "batch"});
  test::expect_error(
      [&] {
        ops::attention(in.q, test::randn(gen, {2, 3, 5, 8}), test::randn(gen, {2, 3, 5, 8}));
      },
      {"[attention]", "query heads (4) must be a multiple of key/value heads (3)"});
  test::expect_error([&] { ops::attention(in.q, in.k, in.v.to(DType::bf16)); },
                     {"[attention]", "must have the same dtype"});
  test::expect_error(
      [&] {
        ops::attention(Tensor::zeros({2, 4, 3, 8}, DType::i32), in.k, in.v);
      },
      {"[attention]", "'q' must be a floating-point tensor"});
  ops::AttentionOptions options;
  options.kv_lengths = Tensor::from_vector<int64_t>({5, 5, 5}, {3});
  test::expect_error([&] { ops::attention(in.q, in.k, in.v, options); },
                     {"[attention]", "argument 'kv_lengths' must have shape [2]"});
  options.kv_lengths = Tensor::full({2}, 5.0);
  test::expect_error([&] { ops::attention(in.q, in.k, in.v, options); },
                     {"[attention]", "'kv_lengths' must hold indices"});
  options = {};
  options.scale = INFINITY;
  test::expect_error([&] { ops::attention(in.q, in.k, in.v, options); },
                     {"[attention]", "scale must be finite"});

  const auto result = ops::attention(in.q, in.k, in.v);
  test::expect_error(
      [&] {
        ops::attention_backward(in.q, in.k, in.v, result.out, result.lse, test::randn(gen, {2, 4, 3, 7}));
      },
      {"[attention_backward]", "argument 'dout' must have shape [2, 4, 3, 8]"});
  test::expect_error(
      [&] { ops::attention_backward(in.q, in.k, in.v, result.out, result.lse.select(2, 0), result.out); },
      {"[attention_backward]", "argument 'lse' must have shape [2, 4, 3]"});
  test::expect_error(
      [&] { ops::attention_backward(in.q, in.k, in.v, result.out.narrow(2, 0, 2), result.lse, result.out); },
      {"[attention_backward]", "argument 'out' must have shape"});
  test::expect_error([&] { ops::attention_backward(in.q, in.k, in.v, result.out, Tensor(), result.out); },
                     {"[attention_backward]", "'lse' is an undefined tensor"});
}

}  // namespace
}  // namespace wick
