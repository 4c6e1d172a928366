#include <gtest/gtest.h>

#include "support/reference.h"
#include "support/test_util.h"
#include "wick/wick.h"

namespace wick {
namespace {

ref::RopeSpec spec_for(const Tensor& x, const ops::RopeOptions& options, std::vector<int64_t> positions) {
  ref::RopeSpec spec{x.size(0), x.size(1), x.size(2), x.size(3), std::move(positions)};
  spec.theta = options.theta;
  spec.interleaved = options.style == ops::RopeStyle::interleaved;
  spec.rotary = options.rotary_dims;
  return spec;
}

TEST(Rope, MatchesReferenceForBothStyles) {
  Generator gen = test::fresh_generator();
  SCOPED_TRACE(ref::seed_of(gen));
  for (DType dtype : {DType::f32, DType::f64, DType::bf16, DType::f16}) {
    for (auto style : {ops::RopeStyle::half_split, ops::RopeStyle::interleaved}) {
      for (int64_t offset : {0, 7}) {
        SCOPED_TRACE(testing::Message() << dtype_name(dtype) << " interleaved "
                                        << (style == ops::RopeStyle::interleaved) << " offset " << offset);
        const Tensor x = test::non_contiguous(test::randn(gen, {2, 9, 3, 16}, dtype));
        ops::RopeOptions options;
        options.style = style;
        options.position_offset = offset;
        options.theta = offset == 0 ? 10000.0 : 500000.0;
        const ref::Vec expected =
            ref::rope(test::values(x), spec_for(x, options, ref::offset_positions(2, 9, offset)));
        ref::expect_close(ops::rope(x, options), expected, test::tolerance(dtype));
      }
    }
  }
}

TEST(Rope, LongPositionsInDouble) {
  Generator gen = test::fresh_generator();
  SCOPED_TRACE(ref::seed_of(gen));
  const Tensor x = test::randn(gen, {1, 5, 2, 8}, DType::f64);
  ops::RopeOptions options;
  options.position_offset = 100000;
  ref::expect_close(ops::rope(x, options),
                    ref::rope(test::values(x), spec_for(x, options, ref::offset_positions(1, 5, 100000))),
                    1e-10);
}

TEST(Rope, ExplicitPositions) {
  Generator gen = test::fresh_generator();
  SCOPED_TRACE(ref::seed_of(gen));
  const Tensor x = test::randn(gen, {2, 5, 3, 8}, DType::f64);
  for (auto style : {ops::RopeStyle::half_split, ops::RopeStyle::interleaved}) {
    // [seq], shared by the batch, as i32; position_offset is ignored when positions are given.
    const std::vector<int64_t> per_seq = {4, 0, 17, 3, 3};
    ops::RopeOptions options;
    options.style = style;
    options.position_offset = 1000;
    options.positions = Tensor::from_vector<int32_t>({4, 0, 17, 3, 3}, {5});
    std::vector<int64_t> expanded = per_seq;
    expanded.insert(expanded.end(), per_seq.begin(), per_seq.end());
    ref::expect_close(ops::rope(x, options), ref::rope(test::values(x), spec_for(x, options, expanded)),
                      1e-12);
    // [batch, seq] as i64, held non-contiguously.
    const std::vector<int64_t> per_batch = {9, 8, 7, 6, 5, 0, 1, 2, 30, 31};
    options.positions = test::non_contiguous(Tensor::from_vector<int64_t>(per_batch, {2, 5}));
    ref::expect_close(ops::rope(x, options), ref::rope(test::values(x), spec_for(x, options, per_batch)),
                      1e-12);
  }
}

TEST(Rope, PartialRotaryDims) {
  Generator gen = test::fresh_generator();
  SCOPED_TRACE(ref::seed_of(gen));
  for (DType dtype : {DType::f32, DType::bf16}) {
    for (auto style : {ops::RopeStyle::half_split, ops::RopeStyle::interleaved}) {
      for (int64_t rotary : {2, 4, 6}) {
        SCOPED_TRACE(testing::Message() << dtype_name(dtype) << " rotary " << rotary);
        const Tensor x = test::randn(gen, {3, 4, 2, 7}, dtype);  // odd head_dim, even rotary part
        ops::RopeOptions options;
        options.style = style;
        options.rotary_dims = rotary;
        options.position_offset = 3;
        const Tensor y = ops::rope(x, options);
        ref::expect_close(y, ref::rope(test::values(x), spec_for(x, options, ref::offset_positions(3, 4, 3))),
                          test::tolerance(dtype));
        // The dimensions past rotary_dims are copied exactly.
        EXPECT_EQ(test::values(y.narrow(3, rotary, 7 - rotary)),
                  test::values(x.narrow(3, rotary, 7 - rotary)));
      }
    }
  }
}

TEST(Rope, SizeOneEdges) {
  Generator gen = test::fresh_generator();
  SCOPED_TRACE(ref::seed_of(gen));
  const Tensor x = test::randn(gen, {1, 1, 1, 2}, DType::f32);
  ops::RopeOptions options;
  options.position_offset = 5;
  ref::expect_close(ops::rope(x, options), ref::rope(test::values(x), spec_for(x, options, {5})), 1e-6);
  // Position 0 is the identity.
  const Tensor z = test::randn(gen, {1, 1, 4, 6}, DType::f64);
  EXPECT_EQ(test::values(ops::rope(z)), test::values(z));
}

TEST(Rope, BackwardIsAdjointAndInverse) {
  Generator gen = test::fresh_generator();
  SCOPED_TRACE(ref::seed_of(gen));
  for (auto style : {ops::RopeStyle::half_split, ops::RopeStyle::interleaved}) {
    for (int64_t rotary : {0, 4}) {
      SCOPED_TRACE(testing::Message()
                   << "interleaved " << (style == ops::RopeStyle::interleaved) << " rotary " << rotary);
      const Shape shape = {2, 6, 3, 10};
      const Tensor x = test::randn(gen, shape, DType::f64);
      const Tensor y = test::randn(gen, shape, DType::f64);
      ops::RopeOptions options;
      options.style = style;
      options.rotary_dims = rotary;
      options.position_offset = 11;
      const Tensor back = ops::rope_backward(y, options);
      const double lhs = ref::dot(test::values(ops::rope(x, options)), test::values(y));
      const double rhs = ref::dot(test::values(x), test::values(back));
      EXPECT_NEAR(lhs, rhs, 1e-10 * (1 + std::abs(lhs)));
      ref::expect_close(ops::rope_backward(ops::rope(x, options), options), test::values(x), 1e-12);
      ref::expect_close(ops::rope(back, options), test::values(y), 1e-12);
      // rope_backward is the rotation by minus the angle, element for element.
      ref::RopeSpec spec = spec_for(y, options, ref::offset_positions(2, 6, 11));
      spec.inverse = true;
      ref::expect_close(back, ref::rope(test::values(y), spec), 1e-12);
      ref::expect_matches_finite_difference([&](const Tensor& t) { return ops::rope(t, options); }, x, y,
                                            back);
    }
  }
}

TEST(Rope, BackwardInHalfPrecision) {
  Generator gen = test::fresh_generator();
  SCOPED_TRACE(ref::seed_of(gen));
  for (DType dtype : {DType::bf16, DType::f16, DType::f32}) {
    SCOPED_TRACE(dtype_name(dtype));
    const Tensor dy = test::non_contiguous(test::randn(gen, {2, 3, 5, 12}, dtype));
    ops::RopeOptions options;
    options.style = ops::RopeStyle::interleaved;
    options.positions = Tensor::from_vector<int64_t>({3, 1, 4, 1, 5, 9}, {2, 3});
    ref::RopeSpec spec = spec_for(dy, options, {3, 1, 4, 1, 5, 9});
    spec.inverse = true;
    ref::expect_close(ops::rope_backward(dy, options), ref::rope(test::values(dy), spec),
                      test::tolerance(dtype));
  }
}

// Written into a block of a wider tensor (the trainer's packed dq/dk/dv), in every dtype.
TEST(Rope, BackwardIntoABlockOfAWiderTensor) {
  Generator gen = test::fresh_generator();
  SCOPED_TRACE(ref::seed_of(gen));
  for (DType dtype : {DType::f64, DType::f32, DType::bf16}) {
    SCOPED_TRACE(dtype_name(dtype));
    const Tensor dy = test::randn(gen, {2, 3, 5, 8}, dtype);
    const Tensor wide = Tensor::full({2, 3, 7, 8}, 5.0, dtype);
    ops::RopeOptions options;
    options.position_offset = 4;
    const Tensor block = wide.narrow(2, 1, 5);
    EXPECT_EQ(ops::rope_backward(dy, options, block).data_ptr(), block.data_ptr());
    EXPECT_EQ(block.contiguous().to_vector<double>(), ops::rope_backward(dy, options).to_vector<double>());
    for (int64_t head : {0, 6})
      for (double v : wide.narrow(2, head, 1).contiguous().to_vector<double>()) EXPECT_EQ(v, 5.0);
  }
  const Tensor dy = test::randn(gen, {2, 3, 5, 8});
  test::expect_error(
      [&] {
        ops::rope_backward(dy, {}, Tensor::empty({2, 3, 4, 8}));
      },
      {"[rope_backward]", "argument 'into' must have shape [2, 3, 5, 8]"});
}

TEST(Rope, BadInputs) {
  Generator gen = test::fresh_generator();
  const Tensor x = test::randn(gen, {2, 3, 4, 8});
  ops::RopeOptions options;
  test::expect_error(
      [&] {
        ops::rope(test::randn(gen, {3, 4, 8}), options);
      },
      {"[rope]", "argument 'x' must have rank 4"});
  test::expect_error(
      [&] {
        ops::rope(Tensor::zeros({2, 3, 4, 8}, DType::i32), options);
      },
      {"[rope]", "must be a floating-point tensor"});
  for (int64_t rotary : {3, 10, -2}) {
    options.rotary_dims = rotary;
    test::expect_error([&] { ops::rope(x, options); },
                       {"[rope]", "rotary_dims must be even and in (0, head_dim=8]", std::to_string(rotary)});
  }
  options.rotary_dims = 5;
  test::expect_error([&] { ops::rope_backward(x, options); }, {"[rope_backward]", "rotary_dims"});
  options = {};
  options.theta = 0;
  test::expect_error([&] { ops::rope(x, options); }, {"[rope]", "theta must be > 0"});
  options = {};
  options.positions = Tensor::from_vector<int64_t>({0, 1}, {2});
  test::expect_error([&] { ops::rope(x, options); }, {"[rope]", "positions must have shape [3] or [2, 3]"});
  options.positions = Tensor::from_vector<int64_t>({0, 1, 2, 3, 4, 5}, {3, 2});
  test::expect_error([&] { ops::rope(x, options); }, {"[rope]", "positions must have shape"});
  options.positions = Tensor::full({3}, 1.0, DType::f32);
  test::expect_error([&] { ops::rope(x, options); }, {"[rope]", "'positions' must hold indices"});
}

}  // namespace
}  // namespace wick
