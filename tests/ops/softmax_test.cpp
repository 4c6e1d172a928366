#include <gtest/gtest.h>

#include <cstdlib>

#include "support/reference.h"
#include "support/test_util.h"
#include "wick/wick.h"

namespace wick {
namespace {

constexpr DType kFloatTypes[] = {DType::f32, DType::f64, DType::bf16, DType::f16};

TEST(Softmax, MatchesReferenceOnEveryAxis) {
  Generator gen = test::fresh_generator();
  SCOPED_TRACE(ref::seed_of(gen));
  const Shape shape = {3, 5, 7};
  for (DType dtype : kFloatTypes) {
    for (int64_t axis : {0, 1, 2, -1, -2, -3}) {
      for (bool strided : {false, true}) {
        SCOPED_TRACE(testing::Message() << dtype_name(dtype) << " axis " << axis << " strided " << strided);
        Tensor x = test::randn(gen, shape, dtype, 3.0);
        if (strided) x = test::non_contiguous(x);
        const ref::Vec held = test::values(x);
        ref::expect_close(ops::softmax(x, axis), ref::softmax(held, shape, axis), test::tolerance(dtype));
        ref::expect_close(ops::log_softmax(x, axis), ref::softmax(held, shape, axis, {}, true),
                          test::tolerance(dtype));
      }
    }
  }
}

TEST(Softmax, SizeOneEdges) {
  Generator gen = test::fresh_generator();
  SCOPED_TRACE(ref::seed_of(gen));
  for (const Shape& shape : {Shape{1}, Shape{1, 1}, Shape{6, 1}, Shape{1, 9}, Shape{2, 1, 3}}) {
    for (int64_t axis = 0; axis < static_cast<int64_t>(shape.size()); ++axis) {
      SCOPED_TRACE(testing::Message() << shape_str(shape) << " axis " << axis);
      const Tensor x = test::randn(gen, shape, DType::f32);
      const ref::Vec held = test::values(x);
      ref::expect_close(ops::softmax(x, axis), ref::softmax(held, shape, axis), 1e-6);
      ref::expect_close(ops::log_softmax(x, axis), ref::softmax(held, shape, axis, {}, true), 1e-6);
    }
  }
  // A single column is probability one whatever the logit.
  for (double p : test::values(ops::softmax(test::randn(gen, {5, 1}, DType::f64, 100.0)))) EXPECT_EQ(p, 1.0);
}

TEST(Softmax, CausalMaskWithOffsets) {
  Generator gen = test::fresh_generator();
  SCOPED_TRACE(ref::seed_of(gen));
  const Shape shape = {2, 3, 5, 8};  // 5 query rows over 8 key columns
  for (DType dtype : {DType::f32, DType::f64, DType::bf16}) {
    for (int64_t offset : {0, 3, -2, 1, 20}) {
      SCOPED_TRACE(testing::Message() << dtype_name(dtype) << " offset " << offset);
      const Tensor x = test::non_contiguous(test::randn(gen, shape, dtype, 2.0));
      ops::SoftmaxMask mask;
      mask.causal = true;
      mask.causal_offset = offset;
      ref::SoftmaxMask ref_mask;
      ref_mask.causal = true;
      ref_mask.offset = offset;
      const Tensor y = ops::softmax(x, -1, mask);
      ref::expect_close(y, ref::softmax(test::values(x), shape, -1, ref_mask), test::tolerance(dtype));
      if (offset == -2) {
        // Rows 0 and 1 see no column at all: exact zeros, not NaN.
        const Tensor hidden = y.narrow(2, 0, 2);
        for (double p : test::values(hidden)) EXPECT_EQ(p, 0.0);
      }
    }
  }
}

TEST(Softmax, LengthMaskAndCombinedWithCausal) {
  Generator gen = test::fresh_generator();
  SCOPED_TRACE(ref::seed_of(gen));
  const Shape shape = {3, 4, 6};
  for (DType index_type : {DType::i32, DType::i64}) {
    for (bool causal : {false, true}) {
      SCOPED_TRACE(testing::Message() << dtype_name(index_type) << " causal " << causal);
      const Tensor x = test::randn(gen, shape, DType::f64);
      ops::SoftmaxMask mask;
      mask.causal = causal;
      mask.causal_offset = 2;
      mask.lengths = Tensor::from_vector<int64_t>({6, 2, 0}, {3}).to(index_type);
      ref::SoftmaxMask ref_mask{causal, 2, {6, 2, 0}};
      const Tensor y = ops::softmax(x, -1, mask);
      ref::expect_close(y, ref::softmax(test::values(x), shape, -1, ref_mask), 1e-12);
      for (double p : test::values(y.select(0, 2))) EXPECT_EQ(p, 0.0);  // length 0: every row fully masked
      for (double p : test::values(y.select(0, 1).narrow(1, 2, 4))) EXPECT_EQ(p, 0.0);
    }
  }
  // A 2-D input: each row is its own batch entry.
  const Tensor x = test::randn(gen, {4, 5}, DType::f32);
  ops::SoftmaxMask mask;
  mask.lengths = Tensor::from_vector<int32_t>({5, 1, 3, 0}, {4});
  ref::expect_close(ops::softmax(x, -1, mask),
                    ref::softmax(test::values(x), {4, 5}, -1, ref::SoftmaxMask{false, 0, {5, 1, 3, 0}}),
                    1e-5);
}

TEST(Softmax, LargeMagnitudeLogitsStayFinite) {
  Generator gen = test::fresh_generator();
  SCOPED_TRACE(ref::seed_of(gen));
  const Shape shape = {4, 33};
  for (DType dtype : {DType::f32, DType::f64, DType::bf16}) {
    SCOPED_TRACE(dtype_name(dtype));
    // Spread of ±1e4 logits, and small differences on top of a 1e4 shift.
    const Tensor wide = test::randn(gen, shape, dtype, 1e4);
    const Tensor shifted = ops::add(test::randn(gen, shape, dtype), Tensor::full({1}, 1e4, dtype));
    const Tensor negative = ops::add(test::randn(gen, shape, dtype), Tensor::full({1}, -1e4, dtype));
    for (const Tensor& x : {wide, shifted, negative}) {
      const ref::Vec held = test::values(x);
      ref::expect_close(ops::softmax(x), ref::softmax(held, shape, -1), test::tolerance(dtype));
      ref::expect_close(ops::log_softmax(x), ref::softmax(held, shape, -1, {}, true), test::tolerance(dtype));
    }
  }
}

TEST(Softmax, BackwardMatchesReference) {
  Generator gen = test::fresh_generator();
  SCOPED_TRACE(ref::seed_of(gen));
  const Shape shape = {3, 4, 7};
  for (DType dtype : kFloatTypes) {
    for (int64_t axis : {0, 1, -1}) {
      SCOPED_TRACE(testing::Message() << dtype_name(dtype) << " axis " << axis);
      const Tensor x = test::randn(gen, shape, dtype, 2.0);
      const Tensor dy = test::non_contiguous(test::randn(gen, shape, dtype));
      const Tensor y = test::non_contiguous(ops::softmax(x, axis));
      const Tensor log_y = ops::log_softmax(x, axis);
      ref::expect_close(ops::softmax_backward(y, dy, axis),
                        ref::softmax_backward(test::values(y), test::values(dy), shape, axis, false),
                        test::tolerance(dtype));
      ref::expect_close(ops::log_softmax_backward(log_y, dy, axis),
                        ref::softmax_backward(test::values(log_y), test::values(dy), shape, axis, true),
                        test::tolerance(dtype));
    }
  }
}

TEST(Softmax, BackwardMatchesFiniteDifferences) {
  Generator gen = test::fresh_generator();
  SCOPED_TRACE(ref::seed_of(gen));
  const Shape shape = {3, 5, 4};
  for (int64_t axis : {1, -1}) {
    SCOPED_TRACE(testing::Message() << "axis " << axis);
    const Tensor x = test::randn(gen, shape, DType::f64, 2.0);
    const Tensor dy = test::randn(gen, shape, DType::f64);
    ref::expect_matches_finite_difference([&](const Tensor& t) { return ops::softmax(t, axis); }, x, dy,
                                          ops::softmax_backward(ops::softmax(x, axis), dy, axis));
    ref::expect_matches_finite_difference([&](const Tensor& t) { return ops::log_softmax(t, axis); }, x, dy,
                                          ops::log_softmax_backward(ops::log_softmax(x, axis), dy, axis));
  }
}

TEST(Softmax, BadInputs) {
  Generator gen = test::fresh_generator();
  const Tensor x = test::randn(gen, {4, 6});
  test::expect_error([&] { ops::softmax(x, 2); }, {"[softmax]", "axis 2 is out of range", "rank 2"});
  test::expect_error([&] { ops::log_softmax(x, -3); }, {"[log_softmax]", "axis -3 is out of range"});
  test::expect_error(
      [&] {
        ops::softmax(Tensor::zeros({4, 6}, DType::i32));
      },
      {"[softmax]", "argument 'x' must be a floating-point tensor"});
  test::expect_error([&] { ops::softmax(Tensor()); }, {"[softmax]", "undefined"});
  ops::SoftmaxMask causal;
  causal.causal = true;
  test::expect_error([&] { ops::softmax(x, 0, causal); }, {"[softmax]", "masks apply to the last axis only"});
  test::expect_error([&] { ops::softmax(test::randn(gen, {6}), -1, causal); },
                     {"[softmax]", "causal mask needs rows and columns"});
  ops::SoftmaxMask lengths;
  lengths.lengths = Tensor::from_vector<int64_t>({1, 2, 3}, {3});
  test::expect_error([&] { ops::softmax(x, -1, lengths); },
                     {"[softmax]", "argument 'mask.lengths' must have shape [4]"});
  lengths.lengths = Tensor::full({4}, 2.0, DType::f32);
  test::expect_error([&] { ops::softmax(x, -1, lengths); },
                     {"[softmax]", "'mask.lengths' must hold indices (i32 or i64)"});
  // A rank-1 input has no batch axis for a length mask to index.
  lengths.lengths = Tensor::from_vector<int64_t>({1, 2, 3, 4, 5, 6}, {6});
  test::expect_error([&] { ops::softmax(test::randn(gen, {6}), -1, lengths); }, {"[softmax]", "length mask"});

  const Tensor y = ops::softmax(x);
  test::expect_error(
      [&] {
        ops::softmax_backward(y, test::randn(gen, {4, 5}));
      },
      {"[softmax_backward]", "argument 'dy' must have shape [4, 6]"});
  test::expect_error(
      [&] {
        ops::softmax_backward(y, test::randn(gen, {4, 6}, DType::f64));
      },
      {"[softmax_backward]", "must have the same dtype"});
  test::expect_error([&] { ops::log_softmax_backward(y, y, 5); },
                     {"[log_softmax_backward]", "axis 5 is out of range"});
}

// Restores an environment variable's absence when the test ends, pass or fail.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) { setenv(name, value, 1); }
  ~ScopedEnv() { unsetenv(name_); }

 private:
  const char* name_;
};

TEST(Softmax, ImplementationOverride) {
  Generator gen = test::fresh_generator();
  const Tensor x = test::randn(gen, {3, 5}, DType::f64);
  {
    ScopedEnv env("WICK_IMPL_SOFTMAX", "nosuch");
    test::expect_error([&] { ops::softmax(x); },
                       {"[softmax]", "unknown implementation 'nosuch'", "expected one of: cpu"});
  }
  {
    ScopedEnv env("WICK_IMPL_SOFTMAX", "cpu");
    ref::expect_close(ops::softmax(x), ref::softmax(test::values(x), {3, 5}, -1), 1e-12);
  }
  EXPECT_EQ(std::getenv("WICK_IMPL_SOFTMAX"), nullptr);
  ref::expect_close(ops::softmax(x), ref::softmax(test::values(x), {3, 5}, -1), 1e-12);
}

}  // namespace
}  // namespace wick
