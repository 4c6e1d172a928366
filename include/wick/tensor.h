// A tensor is shared storage + shape + strides (in elements) + offset (in elements).
// Views (narrow, transpose, permute, view, expand, ...) share the storage and copy nothing.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "wick/device.h"
#include "wick/dtype.h"
#include "wick/storage.h"

namespace wick {

using Shape = std::vector<int64_t>;

int64_t shape_numel(const Shape& shape);
std::string shape_str(const Shape& shape);
// Row-major strides of a contiguous tensor of this shape.
Shape contiguous_strides(const Shape& shape);
// The shape both operands broadcast to (numpy rules); throws Error naming `op` if they do not.
Shape broadcast_shapes(std::string_view op, const Shape& a, const Shape& b);

class Tensor {
 public:
  Tensor() = default;  // an undefined tensor (`defined()` is false): used for optional arguments

  static Tensor empty(const Shape& shape, DType dtype = DType::f32, Device device = Device::cpu());
  static Tensor zeros(const Shape& shape, DType dtype = DType::f32, Device device = Device::cpu());
  static Tensor full(const Shape& shape, double value, DType dtype = DType::f32,
                     Device device = Device::cpu());
  // Copies host values into a new tensor of dtype_of<T> on `device`.
  template <typename T>
  static Tensor from_vector(const std::vector<T>& values, const Shape& shape, Device device = Device::cpu());
  // Wraps existing storage.
  Tensor(std::shared_ptr<Storage> storage, Shape shape, Shape strides, int64_t offset, DType dtype);

  bool defined() const { return storage_ != nullptr; }
  const Shape& shape() const { return shape_; }
  const Shape& strides() const { return strides_; }
  int64_t offset() const { return offset_; }
  int64_t dim() const { return static_cast<int64_t>(shape_.size()); }
  // Size of one axis; negative axes count from the end.
  int64_t size(int64_t axis) const;
  int64_t stride(int64_t axis) const;
  int64_t numel() const { return shape_numel(shape_); }
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype_); }
  DType dtype() const { return dtype_; }
  Device device() const;
  const std::shared_ptr<Storage>& storage() const { return storage_; }
  bool is_contiguous() const;
  // "f32[2, 3] cpu"
  std::string str() const;

  // Address of the first element.
  void* data_ptr() const;
  // Typed address of the first element; throws if T does not match the dtype.
  template <typename T>
  T* data() const;

  // ---- views (no copy) ----
  Tensor narrow(int64_t axis, int64_t start, int64_t length) const;
  Tensor slice(int64_t axis, int64_t start, int64_t end, int64_t step = 1) const;
  // Removes `axis`, keeping element `index` of it.
  Tensor select(int64_t axis, int64_t index) const;
  Tensor transpose(int64_t axis0, int64_t axis1) const;
  Tensor permute(const std::vector<int64_t>& order) const;
  // Same elements with a new shape; one entry may be -1. Throws when the strides make a view impossible.
  Tensor view(const Shape& shape) const;
  // A view when possible, else a contiguous copy.
  Tensor reshape(const Shape& shape) const;
  // Broadcasts size-1 axes (and new leading axes) to `shape` with stride 0.
  Tensor expand(const Shape& shape) const;
  Tensor unsqueeze(int64_t axis) const;
  Tensor squeeze(int64_t axis) const;
  Tensor flatten() const { return reshape({numel()}); }

  // ---- copies ----
  // This tensor if already contiguous, else a contiguous copy.
  Tensor contiguous() const;
  Tensor clone() const;
  Tensor to(Device device) const;
  Tensor to(DType dtype) const;
  // Copies `src` into this tensor, broadcasting it and converting its dtype, across devices if needed.
  void copy_(const Tensor& src) const;
  void fill_(double value) const;

  // ---- reads back to the host (these wait for the device) ----
  template <typename T>
  std::vector<T> to_vector() const;
  // The single element of a one-element tensor, as double.
  double item() const;

 private:
  std::shared_ptr<Storage> storage_;
  Shape shape_;
  Shape strides_;
  int64_t offset_ = 0;
  DType dtype_ = DType::f32;
};

// Normalizes a possibly negative axis against `rank`; throws Error naming `op` when out of range.
int64_t normalize_axis(std::string_view op, int64_t axis, int64_t rank);

}  // namespace wick
