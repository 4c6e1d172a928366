#include "wick/matrix_view.h"

#include "wick/error.h"

namespace wick {

std::optional<MatrixView> try_matrix_view(const Tensor& t) {
  if (t.dim() < 2) fail("matrix_view", "needs a tensor of rank >= 2, got {}", t.str());
  MatrixView view;
  view.data = t.data_ptr();
  view.device = t.device();
  view.dtype = t.dtype();
  view.rows = t.size(-2);
  view.cols = t.size(-1);
  const int64_t row_stride = t.stride(-2);
  const int64_t col_stride = t.stride(-1);
  // Size-1 axes may carry any stride; give them the one that makes the layout valid.
  if ((col_stride == 1 || view.cols == 1) && (view.rows == 1 || row_stride >= view.cols)) {
    view.column_major = false;
    view.ld = view.rows == 1 ? std::max<int64_t>(view.cols, 1) : row_stride;
  } else if ((row_stride == 1 || view.rows == 1) && (view.cols == 1 || col_stride >= view.rows)) {
    view.column_major = true;
    view.ld = view.cols == 1 ? std::max<int64_t>(view.rows, 1) : col_stride;
  } else {
    return std::nullopt;
  }
  // Collapse the batch axes: sizes > 1 must form one evenly strided run (or all have stride 0: broadcast).
  view.batch = 1;
  view.batch_stride = 0;
  int64_t expected = -1;
  for (int64_t axis = t.dim() - 3; axis >= 0; --axis) {
    const int64_t size = t.size(axis);
    if (size == 1) continue;
    const int64_t stride = t.stride(axis);
    if (expected < 0) {
      view.batch_stride = stride;
    } else if (stride != expected) {
      return std::nullopt;
    }
    view.batch *= size;
    expected = stride * size;
  }
  return view;
}

MatrixOperand matrix_operand(const Tensor& t) {
  if (auto view = try_matrix_view(t)) return {t, *view, false};
  Tensor dense = t.contiguous();
  return {dense, *try_matrix_view(dense), true};
}

}  // namespace wick
