#include "wick/dtype.h"

#include "wick/error.h"

namespace wick {

size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::f64:
    case DType::i64:
      return 8;
    case DType::f32:
    case DType::i32:
      return 4;
    case DType::f16:
    case DType::bf16:
      return 2;
    case DType::u8:
    case DType::boolean:
      return 1;
  }
  fail("dtype", "unknown dtype code {}", static_cast<int>(dtype));
}

std::string_view dtype_name(DType dtype) {
  switch (dtype) {
    case DType::f32:
      return "f32";
    case DType::f64:
      return "f64";
    case DType::f16:
      return "f16";
    case DType::bf16:
      return "bf16";
    case DType::i32:
      return "i32";
    case DType::i64:
      return "i64";
    case DType::u8:
      return "u8";
    case DType::boolean:
      return "bool";
  }
  return "?";
}

DType dtype_from_name(std::string_view name) {
  struct Alias {
    std::string_view name;
    DType dtype;
  };
  static constexpr Alias aliases[] = {
      {"f32", DType::f32},     {"float32", DType::f32},  {"float", DType::f32},     {"f64", DType::f64},
      {"float64", DType::f64}, {"double", DType::f64},   {"f16", DType::f16},       {"float16", DType::f16},
      {"half", DType::f16},    {"bf16", DType::bf16},    {"bfloat16", DType::bf16}, {"i32", DType::i32},
      {"int32", DType::i32},   {"i64", DType::i64},      {"int64", DType::i64},     {"u8", DType::u8},
      {"uint8", DType::u8},    {"bool", DType::boolean},
  };
  for (const auto& alias : aliases)
    if (alias.name == name) return alias.dtype;
  fail("dtype", "unknown dtype '{}' (expected one of f32, f64, f16, bf16, i32, i64, u8, bool)", name);
}

bool is_floating(DType dtype) {
  return dtype == DType::f32 || dtype == DType::f64 || dtype == DType::f16 || dtype == DType::bf16;
}

bool is_integer(DType dtype) {
  return dtype == DType::i32 || dtype == DType::i64 || dtype == DType::u8;
}

}  // namespace wick
