#include <gtest/gtest.h>

#include "support/test_util.h"
#include "wick/matrix_view.h"

using namespace wick;

namespace {

// Element address offset of the view at (b, r, c), in elements from the tensor's first element.
int64_t view_offset(const MatrixView& v, int64_t b, int64_t r, int64_t c) {
  return b * v.batch_stride + (v.column_major ? c * v.ld + r : r * v.ld + c);
}

// Every element the view addresses holds the tensor's value at the same logical position.
void expect_view_matches(const Tensor& t, const MatrixView& v) {
  ASSERT_EQ(v.dtype, DType::f32);
  const std::vector<float> logical = t.contiguous().to_vector<float>();
  const float* data = static_cast<const float*>(v.data);
  ASSERT_EQ(v.batch * v.rows * v.cols, t.numel());
  for (int64_t b = 0; b < v.batch; ++b)
    for (int64_t r = 0; r < v.rows; ++r)
      for (int64_t c = 0; c < v.cols; ++c)
        ASSERT_EQ(data[view_offset(v, b, r, c)], logical[(b * v.rows + r) * v.cols + c]) << b << r << c;
}

Tensor numbered(const Shape& shape) {
  std::vector<float> values(static_cast<size_t>(shape_numel(shape)));
  for (size_t i = 0; i < values.size(); ++i) values[i] = static_cast<float>(i);
  return Tensor::from_vector(values, shape);
}

}  // namespace

TEST(MatrixView, RowMajor) {
  Tensor t = numbered({3, 5});
  auto v = try_matrix_view(t);
  ASSERT_TRUE(v);
  EXPECT_EQ(v->data, t.data_ptr());
  EXPECT_EQ(v->rows, 3);
  EXPECT_EQ(v->cols, 5);
  EXPECT_FALSE(v->column_major);
  EXPECT_EQ(v->ld, 5);
  EXPECT_EQ(v->batch, 1);
  EXPECT_TRUE(v->device.is_cpu());
  expect_view_matches(t, *v);
}

TEST(MatrixView, TransposedIsColumnMajor) {
  Tensor t = numbered({5, 3}).transpose(0, 1);
  auto v = try_matrix_view(t);
  ASSERT_TRUE(v);
  EXPECT_EQ(v->rows, 3);
  EXPECT_EQ(v->cols, 5);
  EXPECT_TRUE(v->column_major);
  EXPECT_EQ(v->ld, 3);
  expect_view_matches(t, *v);
}

TEST(MatrixView, SlicedHasLeadingDimensionAboveCols) {
  Tensor base = numbered({6, 10});
  Tensor t = base.narrow(1, 2, 4).narrow(0, 1, 3);
  auto v = try_matrix_view(t);
  ASSERT_TRUE(v);
  EXPECT_FALSE(v->column_major);
  EXPECT_EQ(v->ld, 10);
  EXPECT_EQ(v->rows, 3);
  EXPECT_EQ(v->cols, 4);
  EXPECT_EQ(v->data, static_cast<float*>(base.data_ptr()) + 12);
  expect_view_matches(t, *v);
  // The same slice transposed: column-major with ld 10.
  auto vt = try_matrix_view(t.transpose(0, 1));
  ASSERT_TRUE(vt);
  EXPECT_TRUE(vt->column_major);
  EXPECT_EQ(vt->ld, 10);
  expect_view_matches(t.transpose(0, 1), *vt);
}

TEST(MatrixView, SizeOneAxesTakeAnyStride) {
  Tensor row = numbered({8}).slice(0, 0, 8, 2).unsqueeze(1);  // [4, 1], stride 2 on the rows
  auto v = try_matrix_view(row);
  ASSERT_TRUE(v);
  expect_view_matches(row, *v);
  Tensor col = numbered({8}).slice(0, 0, 8, 2).unsqueeze(0);  // [1, 4], stride 2 on the columns
  auto w = try_matrix_view(col);
  ASSERT_TRUE(w);
  expect_view_matches(col, *w);
}

TEST(MatrixView, BatchedAxesCollapse) {
  Tensor t = numbered({2, 3, 4, 5});
  auto v = try_matrix_view(t);
  ASSERT_TRUE(v);
  EXPECT_EQ(v->batch, 6);
  EXPECT_EQ(v->batch_stride, 20);
  expect_view_matches(t, *v);
  // Batch axes of a tensor whose matrices are transposed and batch sliced with a step.
  Tensor s = numbered({8, 5, 4}).slice(0, 1, 8, 2).transpose(1, 2);  // [4, 4, 5], batch stride 40
  auto w = try_matrix_view(s);
  ASSERT_TRUE(w);
  EXPECT_EQ(w->batch, 4);
  EXPECT_EQ(w->batch_stride, 40);
  EXPECT_TRUE(w->column_major);
  expect_view_matches(s, *w);
  // Size-1 batch axes are skipped.
  Tensor u = numbered({3, 4, 5}).unsqueeze(1).unsqueeze(0);  // [1, 3, 1, 4, 5]
  auto x = try_matrix_view(u);
  ASSERT_TRUE(x);
  EXPECT_EQ(x->batch, 3);
  EXPECT_EQ(x->batch_stride, 20);
}

TEST(MatrixView, BroadcastBatchHasStrideZero) {
  Tensor t = numbered({4, 5}).expand({2, 3, 4, 5});
  auto v = try_matrix_view(t);
  ASSERT_TRUE(v);
  EXPECT_EQ(v->batch, 6);
  EXPECT_EQ(v->batch_stride, 0);
  expect_view_matches(t, *v);
}

TEST(MatrixView, NonCollapsibleBatchIsNullopt) {
  // Batch axes whose strides do not form one run: a permuted batch, and a half-broadcast batch.
  Tensor permuted = numbered({3, 2, 4, 5}).permute({1, 0, 2, 3});
  EXPECT_FALSE(try_matrix_view(permuted));
  Tensor half_broadcast = numbered({3, 4, 5}).unsqueeze(0).expand({2, 3, 4, 5});
  EXPECT_FALSE(try_matrix_view(half_broadcast));
  // Neither matrix axis has unit stride.
  Tensor strided = numbered({4, 10}).slice(1, 0, 10, 2);
  EXPECT_FALSE(try_matrix_view(strided));
  // A broadcast matrix axis.
  EXPECT_FALSE(try_matrix_view(numbered({4, 1}).expand({4, 3})));
}

TEST(MatrixView, RankBelowTwoIsAnError) {
  test::expect_error([] { try_matrix_view(Tensor::zeros({3})); }, {"[matrix_view]", "rank >= 2"});
}

TEST(MatrixOperand, CopiesOnlyWhenNoViewExists) {
  for (const Tensor& t : {numbered({3, 4}), numbered({4, 3}).transpose(0, 1),
                          numbered({5, 6}).narrow(1, 1, 4), numbered({4, 5}).expand({3, 4, 5})}) {
    MatrixOperand op = matrix_operand(t);
    EXPECT_FALSE(op.copied) << t.str();
    EXPECT_EQ(op.view.data, t.data_ptr());
    EXPECT_EQ(op.holder.storage(), t.storage());
  }
  Tensor permuted = numbered({3, 2, 4, 5}).permute({1, 0, 2, 3});
  MatrixOperand op = matrix_operand(permuted);
  EXPECT_TRUE(op.copied);
  EXPECT_NE(op.holder.storage(), permuted.storage());
  EXPECT_TRUE(op.holder.is_contiguous());
  EXPECT_EQ(op.view.batch, 6);
  EXPECT_EQ(op.view.batch_stride, 20);
  EXPECT_FALSE(op.view.column_major);
  expect_view_matches(permuted, op.view);
}
