// Strided copy with dtype conversion, and fill.
#include <cmath>
#include <cstring>

#include "backend/cpu/kernels.h"
#include "backend/cpu/strided.h"
#include "core/parallel.h"

namespace wick::cpu {
namespace {

// A double narrowed to float with round-to-odd (truncate, then set the last bit if anything was dropped).
// Rounding that float to f16/bf16, both at least two bits narrower, then gives the nearest-even result of the
// double itself; plain round-to-nearest to float first could land on a half-way point and round twice.
float to_float_round_to_odd(double value) {
  float f = static_cast<float>(value);
  if (static_cast<double>(f) == value || std::isnan(value)) return f;
  if (std::fabs(static_cast<double>(f)) > std::fabs(value)) f = std::nextafter(f, 0.0f);
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  bits |= 1u;
  std::memcpy(&f, &bits, 4);
  return f;
}

template <typename To, typename From>
To convert(From value) {
  if constexpr (std::is_same_v<From, f16> || std::is_same_v<From, bf16>) {
    return convert<To>(static_cast<float>(value));
  } else if constexpr (std::is_same_v<To, f16> || std::is_same_v<To, bf16>) {
    if constexpr (std::is_same_v<From, float>) {
      return To(value);
    } else {  // f64 and integers (exact in double up to 2^53)
      return To(to_float_round_to_odd(static_cast<double>(value)));
    }
  } else if constexpr (std::is_same_v<To, uint8_t> && std::is_floating_point_v<From>) {
    return static_cast<To>(static_cast<int64_t>(value));
  } else {
    return static_cast<To>(value);
  }
}

// Calls body(T{}) with the C++ type of `dtype`.
template <typename F>
void with_type(DType dtype, F&& body) {
  switch (dtype) {
    case DType::f32:
      return body(float{});
    case DType::f64:
      return body(double{});
    case DType::f16:
      return body(f16{});
    case DType::bf16:
      return body(bf16{});
    case DType::i32:
      return body(int32_t{});
    case DType::i64:
      return body(int64_t{});
    case DType::u8:
    case DType::boolean:
      return body(uint8_t{});
  }
}

}  // namespace

void copy(const Tensor& dst, const Tensor& src) {
  if (dst.numel() == 0) return;
  if (dst.dtype() == src.dtype() && dst.is_contiguous() && src.is_contiguous()) {
    std::memmove(dst.data_ptr(), src.data_ptr(), dst.nbytes());
    return;
  }
  with_type(dst.dtype(), [&](auto dst_tag) {
    using To = decltype(dst_tag);
    with_type(src.dtype(), [&](auto src_tag) {
      using From = decltype(src_tag);
      To* out = static_cast<To*>(dst.data_ptr());
      const From* in = static_cast<const From*>(src.data_ptr());
      const Shape& shape = dst.shape();
      const int64_t out_step = shape.empty() ? 1 : dst.strides().back();
      const int64_t in_step = shape.empty() ? 1 : src.strides().back();
      const int64_t rows = row_count(shape);
      const int64_t grain =
          std::max<int64_t>(1, 32768 / std::max<int64_t>(1, shape.empty() ? 1 : shape.back()));
      parallel_for(rows, grain, [&](int64_t begin, int64_t end) {
        for_each_row<2>(shape, {&dst.strides(), &src.strides()}, begin, end,
                        [&](const std::array<int64_t, 2>& at, int64_t inner) {
                          for (int64_t i = 0; i < inner; ++i)
                            out[at[0] + i * out_step] = convert<To>(in[at[1] + i * in_step]);
                        });
      });
    });
  });
}

void fill(const Tensor& dst, double value) {
  if (dst.numel() == 0) return;
  with_type(dst.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T v = convert<T>(value);
    T* out = static_cast<T*>(dst.data_ptr());
    const Shape& shape = dst.shape();
    const int64_t step = shape.empty() ? 1 : dst.strides().back();
    for_each_row<1>(shape, {&dst.strides()}, 0, row_count(shape),
                    [&](const std::array<int64_t, 1>& at, int64_t inner) {
                      for (int64_t i = 0; i < inner; ++i) out[at[0] + i * step] = v;
                    });
  });
}

}  // namespace wick::cpu
