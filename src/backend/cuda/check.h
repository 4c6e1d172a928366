// Error checks for CUDA runtime and cuBLASLt calls: each failure becomes a wick::Error naming the op.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime.h>

#include <string>
#include <string_view>

#include "wick/error.h"

namespace wick::cuda {

void check(cudaError_t status, std::string_view op, std::string_view what);
void check(cublasStatus_t status, std::string_view op, std::string_view what);

// Checks that a kernel launch was accepted (bad configuration, missing kernel image). Costs no
// synchronization.
inline void check_launch(std::string_view op) {
  check(cudaGetLastError(), op, "kernel launch");
}

}  // namespace wick::cuda
