#include <gtest/gtest.h>

#include "support/reference.h"
#include "support/test_util.h"
#include "wick/wick.h"

namespace wick {
namespace {

constexpr DType kFloatTypes[] = {DType::f32, DType::f64, DType::bf16, DType::f16};
using Gelu = ops::GeluApproximation;

struct UnaryCase {
  const char* name;
  std::function<Tensor(const Tensor&)> forward;
  std::function<Tensor(const Tensor&, const Tensor&)> backward;
  double (*f)(double);
  double (*grad)(double);
};

std::vector<UnaryCase> unary_cases() {
  return {
      {"silu", [](const Tensor& x) { return ops::silu(x); },
       [](const Tensor& x, const Tensor& dy) { return ops::silu_backward(x, dy); }, ref::silu,
       ref::silu_grad},
      {"gelu erf", [](const Tensor& x) { return ops::gelu(x); },
       [](const Tensor& x, const Tensor& dy) { return ops::gelu_backward(x, dy); }, ref::gelu_erf,
       ref::gelu_erf_grad},
      {"gelu tanh", [](const Tensor& x) { return ops::gelu(x, Gelu::tanh); },
       [](const Tensor& x, const Tensor& dy) { return ops::gelu_backward(x, dy, Gelu::tanh); },
       ref::gelu_tanh, ref::gelu_tanh_grad},
  };
}

ref::Vec times(const ref::Vec& a, const ref::Vec& b) {
  ref::Vec c(a.size());
  for (size_t i = 0; i < a.size(); ++i) c[i] = a[i] * b[i];
  return c;
}

TEST(Activation, ForwardAndBackwardMatchReference) {
  Generator gen = test::fresh_generator();
  SCOPED_TRACE(ref::seed_of(gen));
  for (const auto& op : unary_cases()) {
    for (DType dtype : kFloatTypes) {
      for (const Shape& shape : {Shape{7, 131}, Shape{1}, Shape{1, 1}, Shape{3, 1, 5}}) {
        SCOPED_TRACE(testing::Message() << op.name << " " << dtype_name(dtype) << " " << shape_str(shape));
        if (ref::skip_for_edge_shape(dtype, shape)) continue;
        const double tol = ref::tolerance_for(dtype, shape);
        const Tensor x = test::non_contiguous(test::randn(gen, shape, dtype, 3.0));
        const Tensor dy = test::randn(gen, shape, dtype);
        const ref::Vec xv = test::values(x);
        ref::expect_close(op.forward(x), ref::map(xv, op.f), tol);
        ref::expect_close(op.backward(x, dy), times(test::values(dy), ref::map(xv, op.grad)), tol);
      }
    }
  }
}

TEST(Activation, ExtremeInputsStayFinite) {
  const std::vector<double> extremes = {-1e4, -300, -90, -20, -1e-3, 0, 1e-3, 20, 90, 300, 1e4};
  for (const auto& op : unary_cases()) {
    for (DType dtype : {DType::f32, DType::f64}) {
      SCOPED_TRACE(testing::Message() << op.name << " " << dtype_name(dtype));
      const Tensor x = Tensor::from_vector(extremes, {11}).to(dtype);
      const Tensor dy = Tensor::full({11}, 1.0, dtype);
      const ref::Vec y = test::values(op.forward(x)), dx = test::values(op.backward(x, dy));
      for (size_t i = 0; i < extremes.size(); ++i) {
        SCOPED_TRACE(testing::Message() << "x = " << extremes[i]);
        EXPECT_NEAR(y[i], op.f(extremes[i]), 1e-6 * (1 + std::abs(op.f(extremes[i]))));
        EXPECT_NEAR(dx[i], op.grad(extremes[i]), 1e-6 * (1 + std::abs(op.grad(extremes[i]))));
      }
    }
  }
}

TEST(Activation, BackwardMatchesFiniteDifferences) {
  Generator gen = test::fresh_generator();
  SCOPED_TRACE(ref::seed_of(gen));
  for (const auto& op : unary_cases()) {
    SCOPED_TRACE(op.name);
    const Tensor x = test::randn(gen, {5, 9}, DType::f64, 2.0);
    const Tensor dy = test::randn(gen, {5, 9}, DType::f64);
    ref::expect_matches_finite_difference(op.forward, x, dy, op.backward(x, dy));
  }
}

TEST(Swiglu, ForwardAndBackwardMatchReference) {
  Generator gen = test::fresh_generator();
  SCOPED_TRACE(ref::seed_of(gen));
  for (DType dtype : kFloatTypes) {
    for (const Shape& shape : {Shape{5, 77}, Shape{1}, Shape{2, 1, 3}}) {
      SCOPED_TRACE(testing::Message() << dtype_name(dtype) << " " << shape_str(shape));
      if (ref::skip_for_edge_shape(dtype, shape)) continue;
      const double tol = ref::tolerance_for(dtype, shape);
      const Tensor gate = test::randn(gen, shape, dtype, 3.0);
      const Tensor up = test::non_contiguous(test::randn(gen, shape, dtype));
      const Tensor dy = test::non_contiguous(test::randn(gen, shape, dtype));
      const ref::Vec g = test::values(gate), u = test::values(up), d = test::values(dy);
      ref::expect_close(ops::swiglu(gate, up), times(ref::map(g, ref::silu), u), tol);
      const auto grads = ops::swiglu_backward(gate, up, dy);
      ref::expect_close(grads.dgate, times(times(d, u), ref::map(g, ref::silu_grad)), tol);
      ref::expect_close(grads.dup, times(d, ref::map(g, ref::silu)), tol);
    }
  }
}

TEST(Swiglu, BackwardMatchesFiniteDifferences) {
  Generator gen = test::fresh_generator();
  SCOPED_TRACE(ref::seed_of(gen));
  const Tensor gate = test::randn(gen, {4, 7}, DType::f64, 2.0);
  const Tensor up = test::randn(gen, {4, 7}, DType::f64);
  const Tensor dy = test::randn(gen, {4, 7}, DType::f64);
  const auto grads = ops::swiglu_backward(gate, up, dy);
  ref::expect_matches_finite_difference([&](const Tensor& t) { return ops::swiglu(t, up); }, gate, dy,
                                        grads.dgate);
  ref::expect_matches_finite_difference([&](const Tensor& t) { return ops::swiglu(gate, t); }, up, dy,
                                        grads.dup);
}

// Written into given outputs: here the two halves of one [rows, 2·cols] buffer.
TEST(Swiglu, BackwardIntoTheHalvesOfOneBuffer) {
  Generator gen = test::fresh_generator();
  SCOPED_TRACE(ref::seed_of(gen));
  for (DType dtype : kFloatTypes) {
    SCOPED_TRACE(dtype_name(dtype));
    const Tensor gate = test::randn(gen, {5, 9}, dtype, 3.0), up = test::randn(gen, {5, 9}, dtype);
    const Tensor dy = test::randn(gen, {5, 9}, dtype);
    const Tensor both = Tensor::full({5, 18}, 7.0, dtype);
    const auto grads = ops::swiglu_backward(gate, up, dy, {both.narrow(1, 0, 9), both.narrow(1, 9, 9)});
    EXPECT_EQ(grads.dgate.data_ptr(), both.data_ptr());
    const auto expected = ops::swiglu_backward(gate, up, dy);
    EXPECT_EQ(both.narrow(1, 0, 9).contiguous().to_vector<double>(), expected.dgate.to_vector<double>());
    EXPECT_EQ(both.narrow(1, 9, 9).contiguous().to_vector<double>(), expected.dup.to_vector<double>());
  }
  const Tensor x = test::randn(gen, {3, 4});
  test::expect_error(
      [&] {
        ops::swiglu_backward(x, x, x, {test::randn(gen, {3, 5}), x.clone()});
      },
      {"[swiglu_backward]", "argument 'dgate' must have shape [3, 4]"});
  test::expect_error(
      [&] {
        ops::swiglu_backward(x, x, x, {x.clone(), Tensor::zeros({3, 4}, DType::f64)});
      },
      {"[swiglu_backward]", "must have the same dtype"});
}

TEST(Activation, BadInputs) {
  Generator gen = test::fresh_generator();
  const Tensor x = test::randn(gen, {3, 4});
  test::expect_error([&] { ops::silu(Tensor::zeros({3}, DType::i32)); },
                     {"[silu]", "argument 'x' must be a floating-point tensor"});
  test::expect_error([&] { ops::gelu(Tensor()); }, {"[gelu]", "'x' is an undefined tensor"});
  test::expect_error([&] { ops::silu_backward(x, Tensor()); }, {"[silu_backward]", "'dy' is an undefined"});
  test::expect_error(
      [&] {
        ops::silu_backward(x, test::randn(gen, {4, 3}));
      },
      {"[silu_backward]", "argument 'dy' must have shape [3, 4]"});
  test::expect_error(
      [&] {
        ops::gelu_backward(x, test::randn(gen, {3, 4}, DType::bf16), Gelu::tanh);
      },
      {"[gelu_backward]", "must have the same dtype"});
  test::expect_error(
      [&] {
        ops::swiglu(x, test::randn(gen, {3, 5}));
      },
      {"[swiglu]", "argument 'up' must have shape [3, 4]"});
  test::expect_error(
      [&] {
        ops::swiglu(x, test::randn(gen, {3, 4}, DType::f16));
      },
      {"[swiglu]", "arguments 'gate'", "'up'", "must have the same dtype"});
  test::expect_error(
      [&] {
        ops::swiglu_backward(x, x, test::randn(gen, {3, 4}, DType::f64));
      },
      {"[swiglu_backward]", "must have the same dtype"});
  test::expect_error([&] { ops::swiglu_backward(x, x, test::randn(gen, {4})); },
                     {"[swiglu_backward]", "argument 'dy' must have shape [3, 4]"});
  test::expect_error([&] { ops::swiglu_backward(x, Tensor(), x); },
                     {"[swiglu_backward]", "'up'", "undefined"});
}

}  // namespace
}  // namespace wick
