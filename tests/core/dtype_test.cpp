#include <gtest/gtest.h>

#include "wick/dtype.h"
#include "wick/error.h"

using namespace wick;

TEST(DType, SizesAndNames) {
  EXPECT_EQ(dtype_size(DType::f32), 4u);
  EXPECT_EQ(dtype_size(DType::bf16), 2u);
  EXPECT_EQ(dtype_size(DType::i64), 8u);
  EXPECT_EQ(dtype_from_name("bfloat16"), DType::bf16);
  EXPECT_EQ(dtype_name(DType::f16), "f16");
}

TEST(DType, UnknownNameIsClearError) {
  try {
    dtype_from_name("f8");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(),
                 "[dtype] unknown dtype 'f8' (expected one of f32, f64, f16, bf16, i32, i64, u8, bool)");
  }
}
