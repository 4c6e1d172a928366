// A matrix view over tensor storage, the form GEMM libraries consume (as MPSMatrix is taken from a buffer):
// `batch` matrices of rows × cols, element (b, r, c) at data + b·batch_stride + r·row_stride + c·col_stride,
// where one of row_stride / col_stride is 1. No copy is made to take one.
#pragma once

#include <cstdint>
#include <optional>

#include "wick/tensor.h"

namespace wick {

struct MatrixView {
  void* data = nullptr;
  Device device;
  DType dtype = DType::f32;
  int64_t rows = 0;
  int64_t cols = 0;
  int64_t batch = 1;
  int64_t batch_stride = 0;  // elements between matrices; 0 broadcasts one matrix over the batch
  // Stored layout: row-major (element (r, c) at r·ld + c) or column-major (at c·ld + r).
  bool column_major = false;
  int64_t ld = 0;  // leading dimension, >= the inner extent (cols for row-major, rows for column-major)
};

// Views the last two axes of `t` as matrices and its leading axes as one batch axis. Returns nothing when the
// strides do not fit that form (neither of the last two axes unit-stride, or batch axes that do not
// collapse).
std::optional<MatrixView> try_matrix_view(const Tensor& t);

// A matrix operand: the view plus the tensor that owns its memory. When `t` cannot be viewed, this is the one
// place a contiguous copy is made, and `copied` says so.
struct MatrixOperand {
  Tensor holder;
  MatrixView view;
  bool copied = false;
};
MatrixOperand matrix_operand(const Tensor& t);

}  // namespace wick
