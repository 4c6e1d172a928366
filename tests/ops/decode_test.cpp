// The fused decode steps on the CPU: each is the composition of the plain ops it names (the same values, bit
// for bit) and matches a float64 reference; bad arguments give one clear error naming the op.
#include <gtest/gtest.h>

#include "support/reference.h"
#include "support/test_util.h"
#include "wick/wick.h"

namespace wick {
namespace {

constexpr DType kFloatTypes[] = {DType::f32, DType::f64, DType::bf16, DType::f16};

// x·wᵀ + bias of [rows, k] and [n, k] in double.
ref::Vec linear_reference(const ref::Vec& x, const ref::Vec& w, const ref::Vec& bias, int64_t rows, int64_t k,
                          int64_t n) {
  ref::Vec y(static_cast<size_t>(rows * n));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < n; ++j) {
      double sum = bias.empty() ? 0.0 : bias[j];
      for (int64_t i = 0; i < k; ++i) sum += x[r * k + i] * w[j * k + i];
      y[r * n + j] = sum;
    }
  return y;
}

void expect_same_values(const Tensor& actual, const Tensor& expected) {
  ASSERT_EQ(actual.shape(), expected.shape());
  ASSERT_EQ(actual.dtype(), expected.dtype());
  EXPECT_EQ(test::values(actual), test::values(expected));
}

struct Case {
  Shape x;
  int64_t n;
  bool bias;
};

TEST(DecodeOps, AddLinearIsGemmWithBetaOne) {
  Generator gen = test::fresh_generator();
  SCOPED_TRACE(ref::seed_of(gen));
  for (DType dtype : kFloatTypes) {
    for (const Case& c : {Case{{1, 1, 40}, 7, true}, Case{{3, 40}, 45, false}, Case{{2, 2, 33}, 17, true}}) {
      for (bool strided : {false, true}) {
        SCOPED_TRACE(testing::Message() << dtype_name(dtype) << " x " << shape_str(c.x) << " n " << c.n
                                        << " bias " << c.bias << " strided out " << strided);
        const int64_t k = c.x.back(), rows = shape_numel(c.x) / k;
        const Tensor x = test::randn(gen, c.x, dtype), w = test::randn(gen, {c.n, k}, dtype, 0.3);
        const Tensor bias = c.bias ? test::randn(gen, {c.n}, dtype) : Tensor();
        Shape out_shape = c.x;
        out_shape.back() = c.n;
        Tensor out = test::randn(gen, out_shape, dtype);
        if (strided) out = test::non_contiguous(out);
        const Tensor expected = out.contiguous().clone();
        ops::GemmOptions accumulate;
        accumulate.transpose_b = true;
        accumulate.beta = 1.0;
        accumulate.bias = bias;
        ops::gemm(x.reshape({rows, k}), w, expected.view({rows, c.n}), accumulate);
        const ref::Vec before = test::values(out);
        ops::add_linear(out, x, w, bias);
        expect_same_values(out.contiguous(), expected);
        ref::Vec reference = linear_reference(test::values(x), test::values(w),
                                              c.bias ? test::values(bias) : ref::Vec(), rows, k, c.n);
        for (size_t i = 0; i < reference.size(); ++i) reference[i] += before[i];
        ref::expect_close(out, reference, 4 * test::tolerance(dtype));
      }
    }
  }
}

TEST(DecodeOps, RmsNormLinearIsTheComposition) {
  Generator gen = test::fresh_generator();
  SCOPED_TRACE(ref::seed_of(gen));
  for (DType dtype : kFloatTypes) {
    for (const Case& c : {Case{{1, 1, 40}, 7, true}, Case{{3, 40}, 45, false}, Case{{2, 2, 33}, 17, true},
                          Case{{4, 16}, 1, false}}) {
      SCOPED_TRACE(testing::Message()
                   << dtype_name(dtype) << " x " << shape_str(c.x) << " n " << c.n << " bias " << c.bias);
      const int64_t k = c.x.back(), rows = shape_numel(c.x) / k;
      const Tensor x = test::randn(gen, c.x, dtype, 2.0), norm_weight = test::randn(gen, {k}, dtype);
      const Tensor w = test::randn(gen, {c.n, k}, dtype, 0.3);
      const Tensor bias = c.bias ? test::randn(gen, {c.n}, dtype) : Tensor();
      const double eps = 1e-6;
      const Tensor y = ops::rms_norm_linear(x, norm_weight, eps, w, bias);
      Shape expected_shape = c.x;
      expected_shape.back() = c.n;
      EXPECT_EQ(y.shape(), expected_shape);
      expect_same_values(y, ops::linear(ops::rms_norm(x, norm_weight, eps), w, bias));
      // From the normalized rows as the composition stores them (rms_norm is checked against f64 on its
      // own): the stored rounding of a few wide rows can otherwise dominate an output near zero.
      const ref::Vec normed = test::values(ops::rms_norm(x, norm_weight, eps));
      ref::expect_close(
          y,
          linear_reference(normed, test::values(w), c.bias ? test::values(bias) : ref::Vec(), rows, k, c.n),
          4 * test::tolerance(dtype));
    }
  }
}

TEST(DecodeOps, RmsNormLinearSwigluIsTheComposition) {
  Generator gen = test::fresh_generator();
  SCOPED_TRACE(ref::seed_of(gen));
  for (DType dtype : kFloatTypes) {
    for (const Case& c : {Case{{1, 1, 40}, 7, true}, Case{{3, 40}, 45, false}, Case{{2, 2, 24}, 1, true}}) {
      SCOPED_TRACE(testing::Message()
                   << dtype_name(dtype) << " x " << shape_str(c.x) << " inter " << c.n << " bias " << c.bias);
      const int64_t k = c.x.back(), rows = shape_numel(c.x) / k, inter = c.n;
      const Tensor x = test::randn(gen, c.x, dtype, 2.0), norm_weight = test::randn(gen, {k}, dtype);
      const Tensor gate_up = test::randn(gen, {2 * inter, k}, dtype, 0.3);
      const Tensor bias = c.bias ? test::randn(gen, {2 * inter}, dtype) : Tensor();
      const double eps = 1e-5;
      const Tensor y = ops::rms_norm_linear_swiglu(x, norm_weight, eps, gate_up, bias);
      const Tensor product = ops::linear(ops::rms_norm(x, norm_weight, eps), gate_up, bias);
      expect_same_values(y, ops::swiglu(product.narrow(-1, 0, inter), product.narrow(-1, inter, inter)));
      // From the normalized rows as stored (see RmsNormLinearIsTheComposition).
      const ref::Vec both =
          linear_reference(test::values(ops::rms_norm(x, norm_weight, eps)), test::values(gate_up),
                           c.bias ? test::values(bias) : ref::Vec(), rows, k, 2 * inter);
      ref::Vec expected(static_cast<size_t>(rows * inter));
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t j = 0; j < inter; ++j)
          expected[r * inter + j] = ref::silu(both[r * 2 * inter + j]) * both[r * 2 * inter + inter + j];
      ref::expect_close(y, expected, 4 * test::tolerance(dtype));
    }
  }
}

TEST(DecodeOps, RopeWriteCacheIsTheComposition) {
  Generator gen = test::fresh_generator();
  SCOPED_TRACE(ref::seed_of(gen));
  const int64_t batch = 3, heads = 4, kv_heads = 2, dim = 16, capacity = 10;
  for (DType dtype : kFloatTypes) {
    for (auto style : {ops::RopeStyle::half_split, ops::RopeStyle::interleaved}) {
      for (int64_t rotary : {0, 8}) {
        SCOPED_TRACE(testing::Message() << dtype_name(dtype) << " interleaved "
                                        << (style == ops::RopeStyle::interleaved) << " rotary " << rotary);
        const Tensor qkv = test::randn(gen, {batch, 1, (heads + 2 * kv_heads) * dim}, dtype);
        // Row 2's position is past the capacity: it is rotated but not stored.
        const std::vector<int64_t> at = {0, 9, 12};
        const Tensor positions = Tensor::from_vector(at, {batch});
        ops::RopeOptions options;
        options.theta = 1000000.0;
        options.style = style;
        options.rotary_dims = rotary;
        const Tensor keys = test::randn(gen, {batch, kv_heads, capacity, dim}, dtype);
        const Tensor values = test::randn(gen, {batch, kv_heads, capacity, dim}, dtype);
        const Tensor expected_keys = keys.clone(), expected_values = values.clone();
        const Tensor q = ops::rope_write_cache(qkv, positions, heads, kv_heads, keys, values, options);

        ops::RopeOptions per_row = options;
        per_row.positions = positions.view({batch, 1});
        const Tensor rotated = ops::rope(
            qkv.narrow(2, 0, (heads + kv_heads) * dim).reshape({batch, 1, heads + kv_heads, dim}), per_row);
        ops::write_at_positions(expected_keys, rotated.narrow(2, heads, kv_heads).transpose(1, 2), positions);
        ops::write_at_positions(expected_values,
                                qkv.narrow(2, (heads + kv_heads) * dim, kv_heads * dim)
                                    .reshape({batch, 1, kv_heads, dim})
                                    .transpose(1, 2),
                                positions);
        EXPECT_TRUE(q.is_contiguous());
        expect_same_values(q, rotated.narrow(2, 0, heads).transpose(1, 2).contiguous());
        expect_same_values(keys, expected_keys);
        expect_same_values(values, expected_values);

        // The rotation against the float64 reference.
        ref::RopeSpec spec{batch, 1, heads + kv_heads, dim, at};
        spec.theta = options.theta;
        spec.interleaved = style == ops::RopeStyle::interleaved;
        spec.rotary = rotary;
        const Tensor q_and_k =
            qkv.narrow(2, 0, (heads + kv_heads) * dim).reshape({batch, 1, heads + kv_heads, dim});
        const ref::Vec reference = ref::rope(test::values(q_and_k), spec);
        ref::Vec expected_q;
        for (int64_t b = 0; b < batch; ++b)
          for (int64_t i = 0; i < heads * dim; ++i)
            expected_q.push_back(reference[static_cast<size_t>(b * (heads + kv_heads) * dim + i)]);
        ref::expect_close(q, expected_q, test::tolerance(dtype));
      }
    }
  }
}

TEST(DecodeOps, RmsNormLinearRopeWriteCacheIsTheComposition) {
  Generator gen = test::fresh_generator();
  SCOPED_TRACE(ref::seed_of(gen));
  const int64_t batch = 3, heads = 4, kv_heads = 2, dim = 8, capacity = 6, k = 24;
  for (DType dtype : kFloatTypes) {
    for (bool with_bias : {false, true}) {
      SCOPED_TRACE(testing::Message() << dtype_name(dtype) << " bias " << with_bias);
      const Tensor x = test::randn(gen, {batch, 1, k}, dtype, 2.0),
                   norm_weight = test::randn(gen, {k}, dtype);
      const Tensor w = test::randn(gen, {(heads + 2 * kv_heads) * dim, k}, dtype, 0.3);
      const Tensor bias = with_bias ? test::randn(gen, {(heads + 2 * kv_heads) * dim}, dtype) : Tensor();
      const Tensor positions = Tensor::from_vector<int64_t>({5, 0, 7}, {batch});  // row 2 past the capacity
      const Tensor keys = test::randn(gen, {batch, kv_heads, capacity, dim}, dtype);
      const Tensor values = test::randn(gen, {batch, kv_heads, capacity, dim}, dtype);
      const Tensor expected_keys = keys.clone(), expected_values = values.clone();
      ops::RopeOptions options;
      options.theta = 500000.0;
      const Tensor q = ops::rms_norm_linear_rope_write_cache(x, norm_weight, 1e-6, w, bias, positions, heads,
                                                             kv_heads, keys, values, options);
      const Tensor expected_q =
          ops::rope_write_cache(ops::rms_norm_linear(x, norm_weight, 1e-6, w, bias), positions, heads,
                                kv_heads, expected_keys, expected_values, options);
      expect_same_values(q, expected_q);
      expect_same_values(keys, expected_keys);
      expect_same_values(values, expected_values);
    }
  }
}

TEST(DecodeOps, ForcedCompositionRunsAndUnknownImplementationsAreErrors) {
  Generator gen = test::fresh_generator();
  const Tensor x = test::randn(gen, {2, 16}), norm_weight = test::randn(gen, {16});
  const Tensor w = test::randn(gen, {6, 16});
  setenv("WICK_IMPL_RMS_NORM_LINEAR", "composed", 1);
  EXPECT_EQ(ops::rms_norm_linear(x, norm_weight, 1e-6, w).shape(), (Shape{2, 6}));
  setenv("WICK_IMPL_RMS_NORM_LINEAR", "nope", 1);
  test::expect_error([&] { ops::rms_norm_linear(x, norm_weight, 1e-6, w); },
                     {"[rms_norm_linear] unknown implementation 'nope'", "composed"});
  unsetenv("WICK_IMPL_RMS_NORM_LINEAR");
}

TEST(DecodeOps, BadArgumentsAreClearErrors) {
  Generator gen = test::fresh_generator();
  const Tensor x = test::randn(gen, {2, 16}), norm_weight = test::randn(gen, {16});
  const Tensor w = test::randn(gen, {6, 16}), bias = test::randn(gen, {6});
  using test::expect_error;
  expect_error([&] { ops::rms_norm_linear(x, test::randn(gen, {15}), 1e-6, w); },
               {"[rms_norm_linear]", "'norm_weight' must have shape [16]"});
  expect_error(
      [&] {
        ops::rms_norm_linear(x, norm_weight, 1e-6, test::randn(gen, {6, 15}));
      },
      {"[rms_norm_linear]", "w must be [out, 16]"});
  expect_error([&] { ops::rms_norm_linear(x, norm_weight, 1e-6, w.to(DType::f64)); },
               {"[rms_norm_linear]", "same dtype"});
  expect_error([&] { ops::rms_norm_linear(x, norm_weight, 1e-6, w, test::randn(gen, {5})); },
               {"[rms_norm_linear]", "'bias' must have shape [6]"});
  expect_error([&] { ops::rms_norm_linear(x, norm_weight, -1.0, w, bias); },
               {"[rms_norm_linear]", "eps must be >= 0"});
  expect_error(
      [&] {
        ops::rms_norm_linear(Tensor::zeros({2, 16}, DType::i32), norm_weight, 1e-6, w);
      },
      {"[rms_norm_linear]", "floating-point"});
  expect_error(
      [&] {
        ops::rms_norm_linear_swiglu(x, norm_weight, 1e-6, test::randn(gen, {7, 16}));
      },
      {"[rms_norm_linear_swiglu]", "odd number of rows"});
  expect_error([&] { ops::rms_norm_linear_swiglu(x, norm_weight, 1e-6, w, test::randn(gen, {3})); },
               {"[rms_norm_linear_swiglu]", "'bias' must have shape [6]"});

  expect_error(
      [&] {
        ops::add_linear(Tensor::zeros({2, 5}), x, w);
      },
      {"[add_linear]", "'out' must have shape [2, 6]"});
  expect_error(
      [&] {
        ops::add_linear(Tensor::zeros({2, 6}, DType::f64), x, w);
      },
      {"[add_linear]", "same dtype"});
  expect_error(
      [&] {
        ops::add_linear(Tensor::zeros({2, 6}), x, test::randn(gen, {6, 15}));
      },
      {"[add_linear]", "w must be [out, 16]"});

  const Tensor qkv = test::randn(gen, {2, 1, 8 * 4});  // heads 4, kv_heads 2, dim 4
  const Tensor keys = Tensor::zeros({2, 2, 5, 4}), values = Tensor::zeros({2, 2, 5, 4});
  const Tensor positions = Tensor::from_vector<int64_t>({1, 2}, {2});
  expect_error([&] { ops::rope_write_cache(qkv, positions, 4, 3, keys, values); },
               {"[rope_write_cache]", "heads + 2·kv_heads = 10"});
  expect_error(
      [&] {
        ops::rope_write_cache(test::randn(gen, {2, 2, 32}), positions, 4, 2, keys, values);
      },
      {"[rope_write_cache]", "one token per row"});
  expect_error(
      [&] {
        ops::rope_write_cache(qkv, positions, 4, 2, Tensor::zeros({2, 2, 5, 8}), values);
      },
      {"[rope_write_cache]", "'key_cache' must have shape [2, 2, 5, 4]"});
  expect_error(
      [&] {
        ops::rope_write_cache(qkv, positions, 4, 2, keys, Tensor::zeros({2, 2, 6, 4}));
      },
      {"[rope_write_cache]", "'value_cache' must have shape [2, 2, 5, 4]"});
  expect_error([&] { ops::rope_write_cache(qkv, positions, 4, 2, keys, values.to(DType::f64)); },
               {"[rope_write_cache]", "same dtype"});
  expect_error(
      [&] {
        ops::rope_write_cache(qkv, Tensor::from_vector<int32_t>({1, 2}, {2}), 4, 2, keys, values);
      },
      {"[rope_write_cache]", "positions must be i64"});
  expect_error(
      [&] {
        ops::rope_write_cache(qkv, Tensor::from_vector<int64_t>({1, 2, 3}, {3}), 4, 2, keys, values);
      },
      {"[rope_write_cache]", "'positions' must have shape [2]"});
  ops::RopeOptions with_positions;
  with_positions.positions = positions.view({2, 1});
  expect_error([&] { ops::rope_write_cache(qkv, positions, 4, 2, keys, values, with_positions); },
               {"[rope_write_cache]", "options.positions"});
  expect_error(
      [&] {
        ops::rms_norm_linear_rope_write_cache(test::randn(gen, {2, 1, 16}), norm_weight, 1e-6,
                                              test::randn(gen, {30, 16}), Tensor(), positions, 4, 2, keys,
                                              values);
      },
      {"[rms_norm_linear_rope_write_cache]", "w's rows (30) must hold heads + 2·kv_heads = 8"});
  expect_error(
      [&] {
        ops::rms_norm_linear_rope_write_cache(test::randn(gen, {2, 16}), norm_weight, 1e-6,
                                              test::randn(gen, {32, 16}), Tensor(), positions, 4, 2, keys,
                                              values);
      },
      {"[rms_norm_linear_rope_write_cache]", "'x' must have rank 3"});
  ops::RopeOptions odd_rotary;
  odd_rotary.rotary_dims = 3;
  expect_error([&] { ops::rope_write_cache(qkv, positions, 4, 2, keys, values, odd_rotary); },
               {"[rope_write_cache]", "rotary_dims must be even"});
}

}  // namespace
}  // namespace wick
