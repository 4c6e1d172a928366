// RAII wrappers for the cuBLASLt objects wick uses, and the one GEMM entry point on top of them.
#pragma once

#include <cublasLt.h>

#include "backend/cuda/check.h"

namespace wick::cuda {

class LtHandle {
 public:
  LtHandle() { check(cublasLtCreate(&handle_), "gemm", "cublasLtCreate"); }
  ~LtHandle() { cublasLtDestroy(handle_); }
  LtHandle(const LtHandle&) = delete;
  LtHandle& operator=(const LtHandle&) = delete;
  cublasLtHandle_t get() const { return handle_; }

 private:
  cublasLtHandle_t handle_ = nullptr;
};

class LtMatmulDesc {
 public:
  LtMatmulDesc(cublasComputeType_t compute, cudaDataType_t scale) {
    check(cublasLtMatmulDescCreate(&desc_, compute, scale), "gemm", "cublasLtMatmulDescCreate");
  }
  ~LtMatmulDesc() { cublasLtMatmulDescDestroy(desc_); }
  LtMatmulDesc(const LtMatmulDesc&) = delete;
  LtMatmulDesc& operator=(const LtMatmulDesc&) = delete;
  template <typename V>
  void set(cublasLtMatmulDescAttributes_t attribute, const V& value) {
    check(cublasLtMatmulDescSetAttribute(desc_, attribute, &value, sizeof(V)), "gemm",
          "cublasLtMatmulDescSetAttribute");
  }
  cublasLtMatmulDesc_t get() const { return desc_; }

 private:
  cublasLtMatmulDesc_t desc_ = nullptr;
};

class LtLayout {
 public:
  // A column-major rows × cols matrix with leading dimension ld, `batch` of them `batch_stride` elements
  // apart.
  LtLayout(cudaDataType_t type, uint64_t rows, uint64_t cols, int64_t ld, int32_t batch,
           int64_t batch_stride) {
    check(cublasLtMatrixLayoutCreate(&layout_, type, rows, cols, ld), "gemm", "cublasLtMatrixLayoutCreate");
    if (batch > 1) {
      set(CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, batch);
      set(CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, batch_stride);
    }
  }
  ~LtLayout() { cublasLtMatrixLayoutDestroy(layout_); }
  LtLayout(const LtLayout&) = delete;
  LtLayout& operator=(const LtLayout&) = delete;
  template <typename V>
  void set(cublasLtMatrixLayoutAttribute_t attribute, const V& value) {
    check(cublasLtMatrixLayoutSetAttribute(layout_, attribute, &value, sizeof(V)), "gemm",
          "cublasLtMatrixLayoutSetAttribute");
  }
  cublasLtMatrixLayout_t get() const { return layout_; }

 private:
  cublasLtMatrixLayout_t layout_ = nullptr;
};

class LtPreference {
 public:
  explicit LtPreference(size_t workspace_bytes) {
    check(cublasLtMatmulPreferenceCreate(&preference_), "gemm", "cublasLtMatmulPreferenceCreate");
    check(cublasLtMatmulPreferenceSetAttribute(preference_, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                               &workspace_bytes, sizeof(workspace_bytes)),
          "gemm", "cublasLtMatmulPreferenceSetAttribute");
  }
  ~LtPreference() { cublasLtMatmulPreferenceDestroy(preference_); }
  LtPreference(const LtPreference&) = delete;
  LtPreference& operator=(const LtPreference&) = delete;
  cublasLtMatmulPreference_t get() const { return preference_; }

 private:
  cublasLtMatmulPreference_t preference_ = nullptr;
};

}  // namespace wick::cuda
