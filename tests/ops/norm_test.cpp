#include <gtest/gtest.h>

#include "support/reference.h"
#include "support/test_util.h"
#include "wick/wick.h"

namespace wick {
namespace {

constexpr DType kFloatTypes[] = {DType::f32, DType::f64, DType::bf16, DType::f16};

// [rows, cols] of a shape normalized over its last axis.
int64_t rows_of(const Shape& shape) {
  return shape_numel(shape) / shape.back();
}

TEST(RmsNorm, MatchesReference) {
  Generator gen = test::fresh_generator();
  SCOPED_TRACE(ref::seed_of(gen));
  for (DType dtype : kFloatTypes) {
    for (const Shape& shape : {Shape{5, 33}, Shape{2, 3, 17}, Shape{1, 1}, Shape{4, 1}, Shape{7}}) {
      for (bool strided : {false, true}) {
        SCOPED_TRACE(testing::Message()
                     << dtype_name(dtype) << " " << shape_str(shape) << " strided " << strided);
        Tensor x = test::randn(gen, shape, dtype, 2.0);
        Tensor w = test::randn(gen, {shape.back()}, dtype);
        if (strided) x = test::non_contiguous(x), w = test::non_contiguous(w);
        const double eps = 1e-5;
        ref::expect_close(ops::rms_norm(x, w, eps),
                          ref::rms_norm(test::values(x), test::values(w), rows_of(shape), shape.back(), eps),
                          test::tolerance(dtype));
      }
    }
  }
}

TEST(RmsNorm, ResidualReturnsSumAndNormalizedSum) {
  Generator gen = test::fresh_generator();
  SCOPED_TRACE(ref::seed_of(gen));
  const Shape shape = {3, 4, 19};
  for (DType dtype : kFloatTypes) {
    SCOPED_TRACE(dtype_name(dtype));
    const Tensor x = test::non_contiguous(test::randn(gen, shape, dtype));
    const Tensor residual = test::randn(gen, shape, dtype);
    const Tensor w = test::randn(gen, {19}, dtype);
    const auto result = ops::rms_norm_residual(x, residual, w, 1e-6);
    ref::Vec sum = test::values(x);
    const ref::Vec r = test::values(residual);
    for (size_t i = 0; i < sum.size(); ++i) sum[i] += r[i];
    EXPECT_EQ(result.sum.dtype(), dtype);
    EXPECT_EQ(result.y.shape(), shape);
    ref::expect_close(result.sum, sum, test::tolerance(dtype));
    // y normalizes the sum as it is held in `dtype`.
    ref::expect_close(result.y, ref::rms_norm(test::values(result.sum), test::values(w), 12, 19, 1e-6),
                      test::tolerance(dtype));
  }
}

// Written into given outputs: the left columns of a wider matrix (the trainer's packed LoRA input).
TEST(RmsNorm, IntoTheLeftColumnsOfAWiderMatrix) {
  Generator gen = test::fresh_generator();
  SCOPED_TRACE(ref::seed_of(gen));
  for (DType dtype : kFloatTypes) {
    SCOPED_TRACE(dtype_name(dtype));
    const Tensor x = test::randn(gen, {6, 16}, dtype), residual = test::randn(gen, {6, 16}, dtype);
    const Tensor w = test::randn(gen, {16}, dtype);
    const Tensor wide = Tensor::full({6, 24}, 3.0, dtype);
    EXPECT_EQ(ops::rms_norm(x, w, 1e-6, wide.narrow(1, 0, 16)).data_ptr(), wide.data_ptr());
    EXPECT_EQ(wide.narrow(1, 0, 16).contiguous().to_vector<double>(),
              ops::rms_norm(x, w, 1e-6).to_vector<double>());
    const Tensor other = Tensor::full({6, 24}, 3.0, dtype);
    const auto fused = ops::rms_norm_residual(x, residual, w, 1e-6, other.narrow(1, 0, 16));
    EXPECT_EQ(fused.y.data_ptr(), other.data_ptr());
    EXPECT_EQ(other.narrow(1, 0, 16).contiguous().to_vector<double>(),
              ops::rms_norm_residual(x, residual, w, 1e-6).y.to_vector<double>());
    for (const Tensor* t : {&wide, &other})
      for (double v : t->narrow(1, 16, 8).contiguous().to_vector<double>()) EXPECT_EQ(v, 3.0);
  }
  const Tensor x = test::randn(gen, {6, 16});
  test::expect_error(
      [&] {
        ops::rms_norm(x, test::randn(gen, {16}), 1e-6, Tensor::empty({6, 15}));
      },
      {"[rms_norm]", "argument 'into' must have shape [6, 16]"});
  test::expect_error(
      [&] {
        ops::rms_norm(x, test::randn(gen, {16}), 1e-6, Tensor::empty({6, 16}, DType::f64));
      },
      {"[rms_norm]", "must have the same dtype"});
}

TEST(RmsNorm, BackwardMatchesReference) {
  Generator gen = test::fresh_generator();
  SCOPED_TRACE(ref::seed_of(gen));
  for (DType dtype : kFloatTypes) {
    for (const Shape& shape : {Shape{6, 29}, Shape{1, 1}, Shape{3, 1}, Shape{2, 2, 8}}) {
      SCOPED_TRACE(testing::Message() << dtype_name(dtype) << " " << shape_str(shape));
      if (ref::skip_for_edge_shape(dtype, shape)) continue;
      const double tol = ref::tolerance_for(dtype, shape);
      const Tensor x = test::non_contiguous(test::randn(gen, shape, dtype, 1.5));
      const Tensor w = test::randn(gen, {shape.back()}, dtype);
      const Tensor dy = test::randn(gen, shape, dtype);
      const auto grads = ops::rms_norm_backward(x, w, dy, 1e-5);
      const auto expected = ref::rms_norm_backward(test::values(x), test::values(w), test::values(dy),
                                                   rows_of(shape), shape.back(), 1e-5);
      EXPECT_EQ(grads.dx.dtype(), dtype);
      EXPECT_EQ(grads.dweight.dtype(), dtype == DType::f64 ? DType::f64 : DType::f32);
      ref::expect_close(grads.dweight, expected.dweight, tol);
      if (shape.back() > 1) {
        ref::expect_close(grads.dx, expected.dx, tol);
      } else {
        // One column: dx = dy·w·eps / (x² + eps)^1.5 is the tiny difference of two terms of size |dy·w/x|;
        // its error is judged against those terms.
        const ref::Vec got = test::values(grads.dx), xv = test::values(x), wv = test::values(w),
                       gv = test::values(dy);
        for (size_t i = 0; i < got.size(); ++i)
          EXPECT_NEAR(got[i], expected.dx[i], tol * std::abs(gv[i] * wv[0] / xv[i]));
      }
    }
  }
}

TEST(RmsNorm, BackwardMatchesFiniteDifferences) {
  Generator gen = test::fresh_generator();
  SCOPED_TRACE(ref::seed_of(gen));
  const Tensor x = test::randn(gen, {5, 13}, DType::f64);
  const Tensor w = test::randn(gen, {13}, DType::f64);
  const Tensor dy = test::randn(gen, {5, 13}, DType::f64);
  const auto grads = ops::rms_norm_backward(x, w, dy, 1e-6);
  ref::expect_matches_finite_difference([&](const Tensor& t) { return ops::rms_norm(t, w, 1e-6); }, x, dy,
                                        grads.dx);
  ref::expect_matches_finite_difference([&](const Tensor& t) { return ops::rms_norm(x, t, 1e-6); }, w, dy,
                                        grads.dweight);
}

TEST(LayerNorm, MatchesReferenceWithAndWithoutAffine) {
  Generator gen = test::fresh_generator();
  SCOPED_TRACE(ref::seed_of(gen));
  for (DType dtype : kFloatTypes) {
    for (const Shape& shape : {Shape{5, 31}, Shape{2, 3, 8}, Shape{1, 2}, Shape{3, 1}}) {
      for (int affine = 0; affine < 4; ++affine) {
        SCOPED_TRACE(testing::Message()
                     << dtype_name(dtype) << " " << shape_str(shape) << " affine " << affine);
        if (ref::skip_for_edge_shape(dtype, shape)) continue;
        const double tol = ref::tolerance_for(dtype, shape);
        const Tensor x = test::non_contiguous(test::randn(gen, shape, dtype, 2.0));
        const Tensor w = affine & 1 ? test::randn(gen, {shape.back()}, dtype) : Tensor();
        const Tensor b =
            affine & 2 ? test::non_contiguous(test::randn(gen, {shape.back()}, dtype)) : Tensor();
        const ref::Vec wv = w.defined() ? test::values(w) : ref::Vec();
        const ref::Vec bv = b.defined() ? test::values(b) : ref::Vec();
        ref::expect_close(ops::layer_norm(x, w, b, 1e-5),
                          ref::layer_norm(test::values(x), wv, bv, rows_of(shape), shape.back(), 1e-5), tol);
      }
    }
  }
}

TEST(LayerNorm, BackwardMatchesReference) {
  Generator gen = test::fresh_generator();
  SCOPED_TRACE(ref::seed_of(gen));
  for (DType dtype : kFloatTypes) {
    for (const Shape& shape : {Shape{6, 23}, Shape{2, 2, 5}, Shape{1, 3}}) {
      for (int affine = 0; affine < 4; ++affine) {
        SCOPED_TRACE(testing::Message()
                     << dtype_name(dtype) << " " << shape_str(shape) << " affine " << affine);
        if (ref::skip_for_edge_shape(dtype, shape)) continue;
        const double tol = ref::tolerance_for(dtype, shape);
        const Tensor x = test::randn(gen, shape, dtype, 2.0);
        const Tensor w = affine & 1 ? test::randn(gen, {shape.back()}, dtype) : Tensor();
        const Tensor b = affine & 2 ? test::randn(gen, {shape.back()}, dtype) : Tensor();
        const Tensor dy = test::non_contiguous(test::randn(gen, shape, dtype));
        const ref::Vec wv = w.defined() ? test::values(w) : ref::Vec();
        const ref::Vec bv = b.defined() ? test::values(b) : ref::Vec();
        const auto grads = ops::layer_norm_backward(x, w, b, dy, 1e-5);
        const auto expected = ref::layer_norm_backward(test::values(x), wv, bv, test::values(dy),
                                                       rows_of(shape), shape.back(), 1e-5);
        ref::expect_close(grads.dx, expected.dx, tol);
        EXPECT_EQ(grads.dweight.defined(), w.defined());
        EXPECT_EQ(grads.dbias.defined(), b.defined());
        if (w.defined()) ref::expect_close(grads.dweight, expected.dweight, tol);
        if (b.defined()) ref::expect_close(grads.dbias, expected.dbias, tol);
      }
    }
  }
}

TEST(LayerNorm, BackwardMatchesFiniteDifferences) {
  Generator gen = test::fresh_generator();
  SCOPED_TRACE(ref::seed_of(gen));
  const Tensor x = test::randn(gen, {4, 11}, DType::f64, 2.0);
  const Tensor w = test::randn(gen, {11}, DType::f64);
  const Tensor b = test::randn(gen, {11}, DType::f64);
  const Tensor dy = test::randn(gen, {4, 11}, DType::f64);
  const auto grads = ops::layer_norm_backward(x, w, b, dy, 1e-5);
  ref::expect_matches_finite_difference([&](const Tensor& t) { return ops::layer_norm(t, w, b, 1e-5); }, x,
                                        dy, grads.dx);
  ref::expect_matches_finite_difference([&](const Tensor& t) { return ops::layer_norm(x, t, b, 1e-5); }, w,
                                        dy, grads.dweight);
  ref::expect_matches_finite_difference([&](const Tensor& t) { return ops::layer_norm(x, w, t, 1e-5); }, b,
                                        dy, grads.dbias);
  // Without an affine transform.
  ref::expect_matches_finite_difference(
      [&](const Tensor& t) { return ops::layer_norm(t, Tensor(), Tensor(), 1e-5); }, x, dy,
      ops::layer_norm_backward(x, Tensor(), Tensor(), dy, 1e-5).dx);
}

TEST(Norm, BadInputs) {
  Generator gen = test::fresh_generator();
  const Tensor x = test::randn(gen, {4, 8});
  const Tensor w = test::randn(gen, {8});
  test::expect_error([&] { ops::rms_norm(x, test::randn(gen, {7}), 1e-6); },
                     {"[rms_norm]", "argument 'weight' must have shape [8]"});
  test::expect_error([&] { ops::rms_norm(x, Tensor(), 1e-6); }, {"[rms_norm]", "'weight' is an undefined"});
  test::expect_error([&] { ops::rms_norm(x, w, -1.0); }, {"[rms_norm]", "eps must be >= 0"});
  test::expect_error(
      [&] {
        ops::rms_norm(Tensor::zeros({4, 8}, DType::i64), w, 1e-6);
      },
      {"[rms_norm]", "'x' must be a floating-point tensor"});
  test::expect_error([&] { ops::rms_norm(Tensor::full({}, 1.0), Tensor::full({1}, 1.0), 1e-6); },
                     {"[rms_norm]", "rank >= 1"});
  test::expect_error(
      [&] {
        ops::rms_norm_residual(x, test::randn(gen, {4, 7}), w, 1e-6);
      },
      {"[rms_norm_residual]", "argument 'residual' must have shape [4, 8]"});
  test::expect_error(
      [&] {
        ops::rms_norm_residual(x, test::randn(gen, {4, 8}, DType::f64), w, 1e-6);
      },
      {"[rms_norm_residual]", "same dtype"});
  test::expect_error(
      [&] {
        ops::rms_norm_backward(x, w, test::randn(gen, {4, 9}), 1e-6);
      },
      {"[rms_norm_backward]", "argument 'dy' must have shape [4, 8]"});
  test::expect_error([&] { ops::layer_norm(x, Tensor(), test::randn(gen, {4}), 1e-5); },
                     {"[layer_norm]", "argument 'bias' must have shape [8]"});
  test::expect_error([&] { ops::layer_norm(x, Tensor::zeros({8}, DType::i32), Tensor(), 1e-5); },
                     {"[layer_norm]", "'weight' must be a floating-point tensor"});
  test::expect_error(
      [&] {
        ops::layer_norm_backward(x, w, Tensor(), test::randn(gen, {8, 4}), 1e-5);
      },
      {"[layer_norm_backward]", "argument 'dy' must have shape [4, 8]"});
  test::expect_error([&] { ops::layer_norm_backward(x, w, Tensor(), x, std::nan("")); },
                     {"[layer_norm_backward]", "eps must be >= 0"});
}

}  // namespace
}  // namespace wick

namespace wick::test {
namespace {

TEST(RmsNormBackward, WithoutTheWeightGradientGivesTheSameDx) {
  Generator gen = fresh_generator();
  for (DType dtype : {DType::f64, DType::f32, DType::bf16}) {
    const Tensor x = randn(gen, {37, 96}, dtype), w = randn(gen, {96}, dtype),
                 dy = randn(gen, {37, 96}, dtype);
    const auto full = ops::rms_norm_backward(x, w, dy, 1e-6);
    const auto frozen = ops::rms_norm_backward(x, w, dy, 1e-6, false);
    EXPECT_FALSE(frozen.dweight.defined());
    EXPECT_EQ(values(frozen.dx), values(full.dx)) << dtype_name(dtype);
  }
}

// The residual branch's gradient added in the same pass: what adding it afterwards gives, rounded once
// instead of twice (so exactly that in f64, within one rounding in bf16).
TEST(RmsNormBackward, AddsTheResidualGradient) {
  Generator gen = fresh_generator();
  for (DType dtype : {DType::f64, DType::bf16}) {
    const Tensor x = non_contiguous(randn(gen, {37, 96}, dtype)), w = randn(gen, {96}, dtype),
                 dy = randn(gen, {37, 96}, dtype), residual = randn(gen, {37, 96}, dtype);
    for (bool weight_grad : {true, false}) {
      const auto plain = ops::rms_norm_backward(x, w, dy, 1e-6, weight_grad);
      const auto fused = ops::rms_norm_backward(x, w, dy, 1e-6, weight_grad, residual);
      const Tensor expected = ops::add(plain.dx.to(DType::f64), residual.to(DType::f64));
      if (dtype == DType::f64) {
        EXPECT_EQ(values(fused.dx), values(expected));
      } else {
        ref::expect_close(fused.dx, values(expected), 1e-2);
      }
      if (weight_grad) {
        EXPECT_EQ(values(fused.dweight), values(plain.dweight));
      }
    }
  }
  const Tensor x = randn(gen, {4, 8}), w = randn(gen, {8});
  expect_error(
      [&] {
        ops::rms_norm_backward(x, w, x, 1e-6, false, randn(gen, {4, 9}));
      },
      {"[rms_norm_backward]", "argument 'residual_grad' must have shape [4, 8]"});
}

}  // namespace
}  // namespace wick::test
