#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <numeric>
#include <vector>

#include "support/test_util.h"
#include "wick/wick.h"

using namespace wick;

namespace {

// 0, 1, 2, ... as f32 of `shape`.
Tensor arange(const Shape& shape, DType dtype = DType::f32) {
  std::vector<double> values(static_cast<size_t>(shape_numel(shape)));
  std::iota(values.begin(), values.end(), 0.0);
  return Tensor::from_vector(values, shape).to(dtype);
}

std::vector<double> doubles(std::initializer_list<double> values) {
  return std::vector<double>(values);
}

// IEEE round-to-nearest-even of `x` into a binary format with `mantissa_bits` stored bits and exponent bias
// `bias`, computed in double arithmetic (independent of the library's bit tricks). NaN is not handled here.
uint16_t round_bits(double x, int mantissa_bits, int bias) {
  const uint16_t sign = std::signbit(x) ? 0x8000 : 0;
  const double a = std::fabs(x);
  const int exponent_bits = 15 - mantissa_bits;
  const int max_exponent = (1 << exponent_bits) - 2 - bias;  // largest unbiased exponent of a finite number
  const uint16_t inf = static_cast<uint16_t>(((1 << exponent_bits) - 1) << mantissa_bits);
  // Everything from halfway between the largest finite value and 2^(max_exponent + 1) up is infinity.
  const double overflow = std::ldexp(2.0 - std::ldexp(1.0, -mantissa_bits - 1), max_exponent);
  if (std::isinf(a) || a >= overflow) return sign | inf;
  const int min_exponent = 1 - bias;
  if (a < std::ldexp(1.0, min_exponent)) {  // subnormal: multiples of 2^(min_exponent - mantissa_bits)
    const double m = std::nearbyint(std::ldexp(a, mantissa_bits - min_exponent));
    return sign | static_cast<uint16_t>(m);  // m == 2^mantissa_bits encodes the smallest normal
  }
  int e;
  std::frexp(a, &e);
  --e;  // a = 1.f × 2^e
  double m = std::nearbyint(std::ldexp(a, mantissa_bits - e));
  if (m == std::ldexp(1.0, mantissa_bits + 1)) {
    m /= 2;
    ++e;
  }
  const auto fraction = static_cast<uint16_t>(m - std::ldexp(1.0, mantissa_bits));
  return sign | static_cast<uint16_t>((e + bias) << mantissa_bits) | fraction;
}

uint16_t f16_bits(double x) {
  return round_bits(x, 10, 15);
}
uint16_t bf16_bits(double x) {
  return round_bits(x, 7, 127);
}

// The value a binary16 / bfloat16 bit pattern encodes, decoded with ldexp.
double decode(uint16_t bits, int mantissa_bits, int bias) {
  const int exponent_bits = 15 - mantissa_bits;
  const int exponent = (bits >> mantissa_bits) & ((1 << exponent_bits) - 1);
  const int fraction = bits & ((1 << mantissa_bits) - 1);
  const double sign = (bits & 0x8000) ? -1.0 : 1.0;
  if (exponent == (1 << exponent_bits) - 1)
    return fraction ? std::numeric_limits<double>::quiet_NaN() : sign * HUGE_VAL;
  if (exponent == 0) return sign * std::ldexp(fraction, 1 - bias - mantissa_bits);
  return sign * std::ldexp(fraction + (1 << mantissa_bits), exponent - bias - mantissa_bits);
}

template <typename Half>
std::vector<uint16_t> bits_of(const Tensor& t) {
  std::vector<uint16_t> bits;
  for (Half h : t.to_vector<Half>()) bits.push_back(h.bits);
  return bits;
}

// Values that exercise rounding in f16: ties to even in the normal and subnormal ranges, overflow, the
// largest finite values, signed zeros and infinities.
std::vector<double> f16_edge_values() {
  const double ulp1 = std::ldexp(1.0, -10);  // f16 spacing at 1
  const double sub = std::ldexp(1.0, -24);   // smallest f16 subnormal
  return {0.0,
          -0.0,
          1.0,
          1.0 + ulp1 / 2,      // tie: down to the even 1.0
          1.0 + 3 * ulp1 / 2,  // tie: up to the even 1 + 2 ulp
          1.0 + ulp1 / 2 + std::ldexp(1.0, -20),
          -(1.0 + ulp1 / 2),
          65504.0,  // largest finite
          65519.0,  // just under the overflow tie: 65504
          65520.0,  // tie between 65504 and 65536: to even, infinity
          -65520.0,
          1e6,
          sub,
          sub / 2,                            // tie between 0 and the smallest subnormal: 0
          3 * sub / 2,                        // tie: up to 2·sub
          5 * sub / 2,                        // tie: down to 2·sub
          std::ldexp(1.0 + 1.0 / 1024, -25),  // just above the tie: sub
          std::ldexp(1.0, -14),               // smallest normal
          std::ldexp(1.0, -14) - sub / 2,     // tie between the largest subnormal and the smallest normal
          std::ldexp(1023.0, -24),            // largest subnormal
          -std::ldexp(37.0, -24),
          std::ldexp(1.0, -30),
          static_cast<double>(3.14159265f),
          static_cast<double>(-2.71828182f),
          HUGE_VAL,
          -HUGE_VAL};
}

std::vector<double> bf16_edge_values() {
  const double ulp1 = std::ldexp(1.0, -7);
  const double sub = std::ldexp(1.0, -133);  // smallest bf16 subnormal
  return {0.0,
          -0.0,
          1.0,
          1.0 + ulp1 / 2,
          1.0 + 3 * ulp1 / 2,
          1.0 + ulp1 / 2 + std::ldexp(1.0, -20),
          -(1.0 + 3 * ulp1 / 2),
          std::ldexp(255.0, 120),                                  // largest finite bf16
          static_cast<double>(std::numeric_limits<float>::max()),  // rounds up to infinity
          std::ldexp(1.0, -126),
          3 * sub / 2,
          5 * sub / 2,
          static_cast<double>(3.14159265f),
          static_cast<double>(-1e30f),
          HUGE_VAL,
          -HUGE_VAL};
}

}  // namespace

// ---- construction ----

TEST(Tensor, EmptyHasShapeStridesAndDtype) {
  Tensor t = Tensor::empty({2, 3, 4}, DType::bf16);
  EXPECT_TRUE(t.defined());
  EXPECT_EQ(t.shape(), (Shape{2, 3, 4}));
  EXPECT_EQ(t.strides(), (Shape{12, 4, 1}));
  EXPECT_EQ(t.offset(), 0);
  EXPECT_EQ(t.dim(), 3);
  EXPECT_EQ(t.numel(), 24);
  EXPECT_EQ(t.nbytes(), 48u);
  EXPECT_EQ(t.dtype(), DType::bf16);
  EXPECT_TRUE(t.device().is_cpu());
  EXPECT_TRUE(t.is_contiguous());
  EXPECT_EQ(t.size(-1), 4);
  EXPECT_EQ(t.stride(0), 12);
  EXPECT_EQ(t.str(), "bf16[2, 3, 4] cpu");
  EXPECT_FALSE(Tensor().defined());
}

TEST(Tensor, ZerosAndFullForEveryDtype) {
  for (DType dtype : {DType::f32, DType::f64, DType::f16, DType::bf16, DType::i32, DType::i64}) {
    SCOPED_TRACE(dtype_name(dtype));
    EXPECT_EQ(test::values(Tensor::zeros({2, 3}, dtype)), std::vector<double>(6, 0.0));
    EXPECT_EQ(test::values(Tensor::full({3, 1}, 5.0, dtype)), std::vector<double>(3, 5.0));
  }
  EXPECT_EQ(test::values(Tensor::full({2}, -2.5, DType::bf16)), doubles({-2.5, -2.5}));
}

TEST(Tensor, RankZeroAndZeroSizeShapes) {
  Tensor scalar = Tensor::full({}, 7.0);
  EXPECT_EQ(scalar.dim(), 0);
  EXPECT_EQ(scalar.numel(), 1);
  EXPECT_EQ(scalar.item(), 7.0);
  Tensor none = Tensor::zeros({0, 3});
  EXPECT_EQ(none.numel(), 0);
  EXPECT_TRUE(none.to_vector<float>().empty());
  EXPECT_EQ(none.clone().shape(), (Shape{0, 3}));
}

TEST(Tensor, FromVectorToVectorRoundTrip) {
  const std::vector<float> f = {1.5f, -2.0f, 3.25f, 0.0f, 1e-3f, 7.0f};
  Tensor t = Tensor::from_vector(f, {2, 3});
  EXPECT_EQ(t.dtype(), DType::f32);
  EXPECT_EQ(t.to_vector<float>(), f);
  EXPECT_EQ(t.to_vector<double>()[4], static_cast<double>(1e-3f));

  const std::vector<int64_t> big = {-(int64_t{1} << 50) - 3, 0, (int64_t{1} << 62) + 1};
  EXPECT_EQ(Tensor::from_vector(big, {3}).to_vector<int64_t>(), big);
  const std::vector<int32_t> small = {-7, 0, 2147483647};
  Tensor i = Tensor::from_vector(small, {3});
  EXPECT_EQ(i.dtype(), DType::i32);
  EXPECT_EQ(i.to_vector<int32_t>(), small);
  EXPECT_EQ(i.to_vector<int64_t>(), (std::vector<int64_t>{-7, 0, 2147483647}));
}

// ---- views ----

TEST(TensorView, NarrowSharesStorage) {
  Tensor t = arange({4, 5});
  Tensor n = t.narrow(1, 1, 3);
  EXPECT_EQ(n.shape(), (Shape{4, 3}));
  EXPECT_EQ(n.storage(), t.storage());
  EXPECT_FALSE(n.is_contiguous());
  EXPECT_EQ(test::values(n), doubles({1, 2, 3, 6, 7, 8, 11, 12, 13, 16, 17, 18}));
  EXPECT_EQ(test::values(t.narrow(0, -2, 2).narrow(1, 4, 1)), doubles({14, 19}));
  EXPECT_EQ(t.narrow(0, 2, 0).numel(), 0);
}

TEST(TensorView, SliceWithStep) {
  Tensor t = arange({10});
  EXPECT_EQ(test::values(t.slice(0, 1, 8, 3)), doubles({1, 4, 7}));
  EXPECT_EQ(test::values(t.slice(0, 0, 10, 4)), doubles({0, 4, 8}));
  EXPECT_EQ(test::values(t.slice(0, -4, -1)), doubles({6, 7, 8}));
  EXPECT_EQ(test::values(t.slice(0, 7, 100, 2)), doubles({7, 9}));  // end clamps
  EXPECT_EQ(t.slice(0, 6, 2).numel(), 0);
  Tensor m = arange({3, 6});
  Tensor s = m.slice(1, 1, 6, 2);
  EXPECT_EQ(s.shape(), (Shape{3, 3}));
  EXPECT_EQ(s.strides(), (Shape{6, 2}));
  EXPECT_EQ(test::values(s), doubles({1, 3, 5, 7, 9, 11, 13, 15, 17}));
  EXPECT_EQ(test::values(m.slice(0, 0, 3, 2).slice(1, 5, 6)), doubles({5, 17}));
}

TEST(TensorView, SelectRemovesAxis) {
  Tensor t = arange({2, 3, 4});
  EXPECT_EQ(t.select(1, 2).shape(), (Shape{2, 4}));
  EXPECT_EQ(test::values(t.select(1, 2)), doubles({8, 9, 10, 11, 20, 21, 22, 23}));
  EXPECT_EQ(test::values(t.select(-1, -1)), doubles({3, 7, 11, 15, 19, 23}));
  EXPECT_EQ(t.select(0, 1).select(0, 1).select(0, 1).item(), 17.0);
}

TEST(TensorView, TransposeAndPermute) {
  Tensor t = arange({2, 3});
  Tensor tt = t.transpose(0, 1);
  EXPECT_EQ(tt.shape(), (Shape{3, 2}));
  EXPECT_EQ(tt.strides(), (Shape{1, 3}));
  EXPECT_FALSE(tt.is_contiguous());
  EXPECT_EQ(test::values(tt), doubles({0, 3, 1, 4, 2, 5}));

  Tensor c = arange({2, 3, 4});
  Tensor p = c.permute({2, 0, 1});
  EXPECT_EQ(p.shape(), (Shape{4, 2, 3}));
  const std::vector<double> v = test::values(p);
  for (int64_t i = 0; i < 4; ++i)
    for (int64_t j = 0; j < 2; ++j)
      for (int64_t k = 0; k < 3; ++k) EXPECT_EQ(v[(i * 2 + j) * 3 + k], j * 12 + k * 4 + i);
  EXPECT_EQ(test::values(c.permute({-1, 1, 0}).permute({2, 1, 0})), test::values(c));
}

TEST(TensorView, ViewWithInferredAxis) {
  Tensor t = arange({2, 3, 4});
  Tensor v = t.view({4, -1});
  EXPECT_EQ(v.shape(), (Shape{4, 6}));
  EXPECT_EQ(v.storage(), t.storage());
  EXPECT_EQ(test::values(v), test::values(t));
  EXPECT_EQ(t.view({-1}).shape(), (Shape{24}));
  EXPECT_EQ(t.view({1, 2, 1, 12, 1}).shape(), (Shape{1, 2, 1, 12, 1}));
  // A transposed tensor can still merge axes that stay adjacent in memory.
  Tensor p = arange({2, 3, 4}).permute({1, 2, 0});  // [3, 4, 2], strides [4, 1, 12]
  Tensor merged = p.view({12, 2});
  EXPECT_EQ(merged.storage(), p.storage());
  EXPECT_EQ(test::values(merged), test::values(p));
  // Splitting a strided axis keeps the view.
  Tensor s = arange({12}).slice(0, 0, 12, 2).view({2, 3});
  EXPECT_EQ(s.strides(), (Shape{6, 2}));
  EXPECT_EQ(test::values(s), doubles({0, 2, 4, 6, 8, 10}));
}

TEST(TensorView, ViewThatNeedsACopyFails) {
  Tensor tt = arange({2, 3}).transpose(0, 1);
  test::expect_error([&] { tt.view({6}); }, {"[view]", "cannot be viewed as [6]", "reshape"});
  Tensor narrow = arange({4, 4}).narrow(1, 0, 2);
  test::expect_error([&] { narrow.view({8}); }, {"[view]", "without a copy"});
}

TEST(TensorView, ReshapeFallsBackToCopy) {
  Tensor base = arange({2, 3});
  Tensor same = base.reshape({3, 2});
  EXPECT_EQ(same.storage(), base.storage());
  Tensor tt = base.transpose(0, 1);
  Tensor r = tt.reshape({-1});
  EXPECT_NE(r.storage(), tt.storage());
  EXPECT_TRUE(r.is_contiguous());
  EXPECT_EQ(test::values(r), doubles({0, 3, 1, 4, 2, 5}));
  EXPECT_EQ(test::values(tt.flatten()), doubles({0, 3, 1, 4, 2, 5}));
}

TEST(TensorView, ExpandBroadcastsWithStrideZero) {
  Tensor col = arange({3, 1});
  Tensor e = col.expand({2, 3, 4});
  EXPECT_EQ(e.shape(), (Shape{2, 3, 4}));
  EXPECT_EQ(e.strides(), (Shape{0, 1, 0}));
  EXPECT_EQ(e.storage(), col.storage());
  const std::vector<double> v = test::values(e);
  for (size_t i = 0; i < v.size(); ++i) EXPECT_EQ(v[i], static_cast<double>((i / 4) % 3));
  EXPECT_EQ(test::values(Tensor::full({}, 2.0).expand({3})), doubles({2, 2, 2}));
  EXPECT_EQ(test::values(e.contiguous()), v);
}

TEST(TensorView, UnsqueezeAndSqueeze) {
  Tensor t = arange({2, 3});
  EXPECT_EQ(t.unsqueeze(0).shape(), (Shape{1, 2, 3}));
  EXPECT_EQ(t.unsqueeze(1).shape(), (Shape{2, 1, 3}));
  EXPECT_EQ(t.unsqueeze(-1).shape(), (Shape{2, 3, 1}));
  EXPECT_TRUE(t.unsqueeze(1).is_contiguous());
  EXPECT_EQ(test::values(t.unsqueeze(2)), test::values(t));
  EXPECT_EQ(t.unsqueeze(1).squeeze(1).shape(), (Shape{2, 3}));
  EXPECT_EQ(t.unsqueeze(-1).squeeze(-1).strides(), t.strides());
  EXPECT_EQ(Tensor::full({1}, 3.0).squeeze(0).dim(), 0);
}

TEST(TensorView, WritesThroughViewsReachTheBase) {
  Tensor base = Tensor::zeros({3, 4});
  base.transpose(0, 1).narrow(0, 1, 2).select(1, 2).fill_(5.0);                          // base[2, 1..2]
  base.slice(1, 0, 4, 3).select(0, 0).copy_(Tensor::from_vector<float>({-1, -2}, {2}));  // base[0, 0], [0, 3]
  base.view({12}).narrow(0, 4, 1).fill_(9.0);                                            // base[1, 0]
  base.unsqueeze(0).expand({2, 3, 4}).select(0, 1).select(0, 1).narrow(0, 3, 1).fill_(8.0);  // base[1, 3]
  EXPECT_EQ(test::values(base), doubles({-1, 0, 0, -2, 9, 0, 0, 8, 0, 5, 5, 0}));
}

// ---- copies ----

TEST(TensorCopy, ContiguousCopiesOnlyWhenNeeded) {
  Tensor t = arange({3, 4});
  EXPECT_EQ(t.contiguous().storage(), t.storage());
  Tensor tt = t.transpose(0, 1);
  Tensor c = tt.contiguous();
  EXPECT_NE(c.storage(), t.storage());
  EXPECT_TRUE(c.is_contiguous());
  EXPECT_EQ(c.strides(), (Shape{3, 1}));
  EXPECT_EQ(test::values(c), test::values(tt));
  Tensor stepped = arange({10}).slice(0, 0, 10, 3);
  EXPECT_EQ(test::values(stepped.contiguous()), doubles({0, 3, 6, 9}));
}

TEST(TensorCopy, CloneIsIndependent) {
  Tensor t = arange({2, 3});
  Tensor c = t.clone();
  EXPECT_NE(c.storage(), t.storage());
  c.fill_(1.0);
  EXPECT_EQ(test::values(t), doubles({0, 1, 2, 3, 4, 5}));
  EXPECT_EQ(test::values(t.transpose(0, 1).clone()), doubles({0, 3, 1, 4, 2, 5}));
}

TEST(TensorCopy, CopyBroadcastsAndConvertsAcrossStrides) {
  Generator gen = test::fresh_generator();
  // Destination: a transposed, sliced view of an f16 buffer; source: an f32 row broadcast over rows, itself
  // strided.
  Tensor storage = Tensor::full({6, 8}, -7.0, DType::f16);
  Tensor dst = storage.transpose(0, 1).slice(0, 1, 8, 2);  // [4, 6], strides [2, 8]
  Tensor row_storage = test::randn(gen, {1, 12});
  Tensor src = row_storage.slice(1, 0, 12, 2);  // [1, 6], stride 2
  dst.copy_(src);
  const std::vector<double> s = test::values(src);
  const std::vector<double> st = test::values(storage);
  for (int64_t i = 0; i < 6; ++i) {
    for (int64_t j = 0; j < 8; ++j) {
      const double expected = j % 2 == 1 ? decode(f16_bits(s[i]), 10, 15) : -7.0;
      EXPECT_EQ(st[i * 8 + j], expected) << i << "," << j;
    }
  }
  // Integer source into a non-contiguous f64 destination, broadcasting a rank-0 tensor and a column.
  Tensor d = Tensor::zeros({3, 4}, DType::f64).transpose(0, 1);  // [4, 3]
  d.copy_(Tensor::from_vector<int64_t>({10, 20, 30}, {3}));
  EXPECT_EQ(test::values(d), doubles({10, 20, 30, 10, 20, 30, 10, 20, 30, 10, 20, 30}));
  d.copy_(Tensor::from_vector<int32_t>({-1, -2, -3, -4}, {4, 1}));
  EXPECT_EQ(test::values(d), doubles({-1, -1, -1, -2, -2, -2, -3, -3, -3, -4, -4, -4}));
  d.copy_(Tensor::full({}, 0.5, DType::bf16));
  EXPECT_EQ(test::values(d), std::vector<double>(12, 0.5));
}

// ---- dtype conversion ----

TEST(TensorConvert, RoundTripsThroughWiderTypes) {
  Generator gen = test::fresh_generator();
  Tensor f32 = test::randn(gen, {257});
  EXPECT_EQ(f32.to(DType::f64).to(DType::f32).to_vector<float>(), f32.to_vector<float>());
  for (DType half : {DType::f16, DType::bf16}) {
    Tensor h = f32.to(half);
    EXPECT_EQ(h.dtype(), half);
    // half -> f32 -> half and half -> f64 -> half are exact.
    EXPECT_EQ(test::values(h.to(DType::f32).to(half)), test::values(h));
    EXPECT_EQ(test::values(h.to(DType::f64).to(half)), test::values(h));
  }
  const std::vector<int64_t> ints = {-(int64_t{1} << 40) - 7, -1, 0, 3, int64_t{1} << 52};
  Tensor i64 = Tensor::from_vector(ints, {5});
  EXPECT_EQ(i64.to(DType::f64).to(DType::i64).to_vector<int64_t>(), ints);
  const std::vector<int32_t> i32 = {-2147483647 - 1, -5, 0, 65505, 2147483647};
  EXPECT_EQ(Tensor::from_vector(i32, {5}).to(DType::f64).to(DType::i32).to_vector<int32_t>(), i32);
  EXPECT_EQ(Tensor::from_vector(i32, {5}).to(DType::i64).to(DType::i32).to_vector<int32_t>(), i32);
  // Integers up to 2^11 are exact in f16, up to 2^8 in bf16.
  const std::vector<int32_t> exact = {-2048, -1, 0, 1, 255, 256, 2047};
  EXPECT_EQ(Tensor::from_vector(exact, {7}).to(DType::f16).to(DType::i32).to_vector<int32_t>(), exact);
  const std::vector<int32_t> exact_bf = {-256, -1, 0, 1, 127, 255};
  EXPECT_EQ(Tensor::from_vector(exact_bf, {6}).to(DType::bf16).to(DType::i32).to_vector<int32_t>(), exact_bf);
}

TEST(TensorConvert, FloatToIntegerTruncatesTowardZero) {
  Tensor f = Tensor::from_vector<float>({2.7f, -2.7f, 0.5f, -0.5f, 100.0f}, {5});
  EXPECT_EQ(f.to(DType::i32).to_vector<int32_t>(), (std::vector<int32_t>{2, -2, 0, 0, 100}));
  EXPECT_EQ(f.to(DType::i64).to_vector<int64_t>(), (std::vector<int64_t>{2, -2, 0, 0, 100}));
}

TEST(TensorConvert, SameDtypeReturnsSameTensor) {
  Tensor t = arange({3});
  EXPECT_EQ(t.to(DType::f32).storage(), t.storage());
}

TEST(TensorConvert, F16RoundsToNearestEven) {
  const std::vector<double> values = f16_edge_values();
  std::vector<uint16_t> expected;
  for (double v : values) expected.push_back(f16_bits(v));
  // From f64 directly (a single rounding) and from the f32 values (exact for every edge value).
  EXPECT_EQ(bits_of<f16>(Tensor::from_vector(values, {static_cast<int64_t>(values.size())}).to(DType::f16)),
            expected);
  std::vector<float> as_float(values.begin(), values.end());
  for (size_t i = 0; i < values.size(); ++i) ASSERT_EQ(static_cast<double>(as_float[i]), values[i]);
  EXPECT_EQ(bits_of<f16>(Tensor::from_vector(as_float, {static_cast<int64_t>(values.size())}).to(DType::f16)),
            expected);
  // Spot checks of the reference itself.
  EXPECT_EQ(f16_bits(1.0), 0x3c00);
  EXPECT_EQ(f16_bits(65504.0), 0x7bff);
  EXPECT_EQ(f16_bits(65520.0), 0x7c00);
  EXPECT_EQ(f16_bits(std::ldexp(1.0, -24)), 0x0001);
  EXPECT_EQ(f16_bits(-std::ldexp(1.0, -14)), 0x8400);
}

TEST(TensorConvert, F16OfRandomFloats) {
  Generator gen = test::fresh_generator();
  // Magnitudes from 2^-27 to 2^17 cover subnormals, normals and overflow.
  Tensor mantissa = rand_uniform({4096}, gen, -2.0, 2.0, DType::f64);
  Tensor exponent = rand_uniform({4096}, gen, -27.0, 17.0, DType::f64);
  std::vector<float> values;
  const std::vector<double> m = test::values(mantissa), e = test::values(exponent);
  for (size_t i = 0; i < m.size(); ++i) values.push_back(static_cast<float>(std::ldexp(m[i], int(e[i]))));
  std::vector<uint16_t> expected;
  for (float v : values) expected.push_back(f16_bits(v));
  EXPECT_EQ(bits_of<f16>(Tensor::from_vector(values, {4096}).to(DType::f16)), expected);
}

TEST(TensorConvert, F16DecodesEveryBitPattern) {
  std::vector<f16> all;
  for (uint32_t b = 0; b < 65536; ++b) all.push_back(f16::from_bits(static_cast<uint16_t>(b)));
  const std::vector<double> decoded = Tensor::from_vector(all, {65536}).to_vector<double>();
  const Tensor back = Tensor::from_vector(all, {65536}).to(DType::f32).to(DType::f16);
  const std::vector<uint16_t> round_trip = bits_of<f16>(back);
  for (uint32_t b = 0; b < 65536; ++b) {
    const double expected = decode(static_cast<uint16_t>(b), 10, 15);
    if (std::isnan(expected)) {
      ASSERT_TRUE(std::isnan(decoded[b])) << std::hex << b;
      ASSERT_EQ(round_trip[b] & 0x7c00, 0x7c00) << std::hex << b;
      ASSERT_NE(round_trip[b] & 0x3ff, 0) << std::hex << b;
    } else {
      ASSERT_EQ(decoded[b], expected) << std::hex << b;
      ASSERT_EQ(std::signbit(decoded[b]), std::signbit(expected)) << std::hex << b;
      ASSERT_EQ(round_trip[b], b) << std::hex << b;
    }
  }
}

TEST(TensorConvert, Bf16RoundsToNearestEven) {
  const std::vector<double> values = bf16_edge_values();
  std::vector<uint16_t> expected;
  for (double v : values) expected.push_back(bf16_bits(v));
  std::vector<float> as_float(values.begin(), values.end());
  for (size_t i = 0; i < values.size(); ++i) ASSERT_EQ(static_cast<double>(as_float[i]), values[i]);
  const auto n = static_cast<int64_t>(values.size());
  EXPECT_EQ(bits_of<bf16>(Tensor::from_vector(as_float, {n}).to(DType::bf16)), expected);
  EXPECT_EQ(bits_of<bf16>(Tensor::from_vector(values, {n}).to(DType::bf16)), expected);
  EXPECT_EQ(bf16_bits(1.0), 0x3f80);
  EXPECT_EQ(bf16_bits(-2.0), 0xc000);
  EXPECT_EQ(bf16_bits(static_cast<double>(std::numeric_limits<float>::max())), 0x7f80);

  Generator gen = test::fresh_generator();
  std::vector<float> random = test::randn(gen, {4096}, DType::f32, 1000.0).to_vector<float>();
  std::vector<uint16_t> random_expected;
  for (float v : random) random_expected.push_back(bf16_bits(v));
  EXPECT_EQ(bits_of<bf16>(Tensor::from_vector(random, {4096}).to(DType::bf16)), random_expected);
}

TEST(TensorConvert, Bf16DecodesEveryBitPattern) {
  std::vector<bf16> all;
  for (uint32_t b = 0; b < 65536; ++b) all.push_back(bf16::from_bits(static_cast<uint16_t>(b)));
  const std::vector<double> decoded = Tensor::from_vector(all, {65536}).to_vector<double>();
  const std::vector<uint16_t> round_trip =
      bits_of<bf16>(Tensor::from_vector(all, {65536}).to(DType::f64).to(DType::bf16));
  for (uint32_t b = 0; b < 65536; ++b) {
    const double expected = decode(static_cast<uint16_t>(b), 7, 127);
    if (std::isnan(expected)) {
      ASSERT_TRUE(std::isnan(decoded[b])) << std::hex << b;
      ASSERT_EQ(round_trip[b] & 0x7f80, 0x7f80) << std::hex << b;
      ASSERT_NE(round_trip[b] & 0x7f, 0) << std::hex << b;
    } else {
      ASSERT_EQ(decoded[b], expected) << std::hex << b;
      ASSERT_EQ(round_trip[b], b) << std::hex << b;
    }
  }
}

TEST(TensorConvert, NanAndInfinitySurvive) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  Tensor t = Tensor::from_vector<double>({nan, HUGE_VAL, -HUGE_VAL, -nan}, {4});
  for (DType dtype : {DType::f32, DType::f16, DType::bf16}) {
    SCOPED_TRACE(dtype_name(dtype));
    const std::vector<double> v = test::values(t.to(dtype));
    EXPECT_TRUE(std::isnan(v[0]));
    EXPECT_EQ(v[1], HUGE_VAL);
    EXPECT_EQ(v[2], -HUGE_VAL);
    EXPECT_TRUE(std::isnan(v[3]));
  }
  // A NaN whose payload sits only in the low bits must not become infinity.
  uint32_t low_payload = 0x7f800001u;
  float f;
  std::memcpy(&f, &low_payload, 4);
  EXPECT_TRUE(std::isnan(test::values(Tensor::from_vector<float>({f}, {1}).to(DType::f16))[0]));
  EXPECT_TRUE(std::isnan(test::values(Tensor::from_vector<float>({f}, {1}).to(DType::bf16))[0]));
}

TEST(TensorConvert, F64ToHalfRoundsOnce) {
  // Each value lies just beyond a half tie by less than an f32 ulp: rounding to f32 first would land on the
  // tie and then round to even, the wrong way.
  const std::vector<double> values = {
      1.0 + std::ldexp(1.0, -11) + std::ldexp(1.0, -40), -(1.0 + std::ldexp(1.0, -11) + std::ldexp(1.0, -40)),
      1.0 + std::ldexp(1.0, -8) + std::ldexp(1.0, -40), std::ldexp(1.0, -25) + std::ldexp(1.0, -60),
      65520.0 - std::ldexp(1.0, -30)};
  std::vector<uint16_t> expected_f16, expected_bf16;
  for (double v : values) {
    expected_f16.push_back(f16_bits(v));
    expected_bf16.push_back(bf16_bits(v));
  }
  EXPECT_EQ(expected_f16[0], 0x3c01);
  EXPECT_EQ(expected_f16[3], 0x0001);
  EXPECT_EQ(expected_f16[4], 0x7bff);
  EXPECT_EQ(expected_bf16[2], 0x3f81);
  Tensor t = Tensor::from_vector(values, {5});
  EXPECT_EQ(bits_of<f16>(t.to(DType::f16)), expected_f16);
  EXPECT_EQ(bits_of<bf16>(t.to(DType::bf16)), expected_bf16);
  EXPECT_EQ(bits_of<f16>(Tensor::full({1}, values[0], DType::f16)), std::vector<uint16_t>{0x3c01});
}

TEST(TensorConvert, IntegersToHalfRoundToNearestEven) {
  // 2^24 + 2^16 + 1 lies just above a bf16 tie: the nearest bf16 is 2^24 + 2^17.
  const std::vector<int32_t> ints = {
      (1 << 24) + (1 << 16) + 1, (1 << 24) + (1 << 16), 2049, 2051, 65519, 70000};
  Tensor t = Tensor::from_vector(ints, {6});
  std::vector<uint16_t> expected_bf, expected_f16;
  for (int32_t v : ints) {
    expected_bf.push_back(bf16_bits(v));
    expected_f16.push_back(f16_bits(v));
  }
  EXPECT_EQ(bits_of<bf16>(t.to(DType::bf16)), expected_bf);
  EXPECT_EQ(bits_of<f16>(t.to(DType::f16)), expected_f16);
  EXPECT_EQ(bits_of<bf16>(t.to(DType::i64).to(DType::bf16)), expected_bf);
}

TEST(Tensor, ItemReadsTheOneElement) {
  EXPECT_EQ(Tensor::full({1, 1}, -3.5, DType::bf16).item(), -3.5);
  EXPECT_EQ(Tensor::from_vector<int64_t>({int64_t{1} << 40}, {}).item(), std::ldexp(1.0, 40));
  EXPECT_EQ(arange({2, 3}).select(1, 2).select(0, 1).item(), 5.0);
}

// ---- errors ----

TEST(TensorErrors, BadInputsNameTheProblem) {
  Tensor t = arange({2, 3});
  using test::expect_error;
  expect_error([] { Tensor::empty({2, -1}); }, {"[empty]", "negative size", "[2, -1]"});
  expect_error(
      [] {
        Tensor::from_vector<float>({1, 2, 3}, {2, 2});
      },
      {"[from_vector]", "3 values", "[2, 2]", "expected 4"});
  expect_error([&] { t.size(2); }, {"[size]", "axis 2 is out of range", "rank 2"});
  expect_error([&] { t.narrow(1, 2, 2); }, {"[narrow]", "[2, 4)", "size 3"});
  expect_error([&] { t.narrow(2, 0, 1); }, {"[narrow]", "axis 2 is out of range"});
  expect_error([&] { t.slice(0, 0, 2, 0); }, {"[slice]", "step must be positive, got 0"});
  expect_error([&] { t.select(0, 2); }, {"[select]", "index 2 is out of range", "size 2"});
  expect_error([&] { t.select(1, -4); }, {"[select]", "out of range"});
  expect_error([&] { t.transpose(0, -3); }, {"[transpose]", "axis -3 is out of range", "expected -2..1"});
  expect_error([&] { t.permute({0}); }, {"[permute]", "1 axes", "rank 2"});
  expect_error([&] { t.permute({1, 1}); }, {"[permute]", "axis 1 appears twice"});
  expect_error([&] { t.view({-1, -1}); }, {"[view]", "more than one -1"});
  expect_error([&] { t.view({4, -1}); }, {"[view]", "cannot infer -1", "6 elements"});
  expect_error([&] { t.view({5}); }, {"[view]", "[5] has 5 elements", "has 6"});
  expect_error([&] { t.reshape({7}); }, {"[reshape]", "[7] has 7 elements"});
  expect_error([&] { t.expand({2, 4}); }, {"[expand]", "cannot expand [2, 3] to [2, 4]"});
  expect_error([&] { t.expand({3}); }, {"[expand]", "lower-rank"});
  expect_error([&] { t.squeeze(0); }, {"[squeeze]", "axis 0 has size 2, expected 1"});
  expect_error([&] { t.unsqueeze(4); }, {"[unsqueeze]", "out of range"});
  expect_error([&] { t.data<double>(); }, {"[tensor]", "data<f64>() on a f32 tensor"});
  expect_error([&] { t.item(); }, {"[item]", "6 elements, expected exactly 1"});
  expect_error([&] { t.copy_(arange({3, 2})); }, {"[expand]", "cannot expand [3, 2] to [2, 3]"});
  expect_error([&] { t.copy_(Tensor()); }, {"[copy]", "undefined"});
  expect_error([] { Tensor().data_ptr(); }, {"[tensor]", "undefined tensor"});
}
