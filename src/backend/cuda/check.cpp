#include "backend/cuda/check.h"

#include <fmt/format.h>

namespace wick::cuda {

void check(cudaError_t status, std::string_view op, std::string_view what) {
  if (status != cudaSuccess)
    fail(op, "{} failed: {} ({})", what, cudaGetErrorString(status), cudaGetErrorName(status));
}

void check(cublasStatus_t status, std::string_view op, std::string_view what) {
  if (status != CUBLAS_STATUS_SUCCESS)
    fail(op, "{} failed: {} ({})", what, cublasLtGetStatusString(status), cublasLtGetStatusName(status));
}

}  // namespace wick::cuda
