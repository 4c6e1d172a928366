// The base of the dtype-parameterized GPU tests: skips cleanly where no CUDA device exists, and gives the
// device, a fresh generator and the tested dtype.
#pragma once

#include <gtest/gtest.h>

#include "support/test_util.h"
#include "wick/cuda.h"

namespace wick::test {

class CudaTest : public ::testing::TestWithParam<DType> {
 protected:
  void SetUp() override {
    if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device (CUDA built: " << cuda_built() << ")";
  }
  Device gpu = Device::cuda(0);
  Generator gen = fresh_generator();
  DType dtype() const { return GetParam(); }
};

}  // namespace wick::test
