#include "wick/tensor.h"

#include <algorithm>

#include "backend/memory.h"
#include "ops/copy.h"
#include "wick/error.h"

namespace wick {

int64_t shape_numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t size : shape) n *= size;
  return n;
}

std::string shape_str(const Shape& shape) {
  return fmt::format("[{}]", fmt::join(shape, ", "));
}

Shape contiguous_strides(const Shape& shape) {
  Shape strides(shape.size());
  int64_t stride = 1;
  for (size_t i = shape.size(); i-- > 0;) {
    strides[i] = stride;
    stride *= std::max<int64_t>(shape[i], 1);
  }
  return strides;
}

Shape broadcast_shapes(std::string_view op, const Shape& a, const Shape& b) {
  const size_t rank = std::max(a.size(), b.size());
  Shape out(rank);
  for (size_t i = 0; i < rank; ++i) {
    const int64_t da = i < rank - a.size() ? 1 : a[i - (rank - a.size())];
    const int64_t db = i < rank - b.size() ? 1 : b[i - (rank - b.size())];
    if (da != db && da != 1 && db != 1)
      fail(op, "shapes {} and {} cannot be broadcast together (axis {}: {} vs {})", shape_str(a),
           shape_str(b), i, da, db);
    out[i] = da == 1 ? db : da;
  }
  return out;
}

int64_t normalize_axis(std::string_view op, int64_t axis, int64_t rank) {
  const int64_t normalized = axis < 0 ? axis + rank : axis;
  if (normalized < 0 || normalized >= rank)
    fail(op, "axis {} is out of range for a tensor of rank {} (expected {}..{})", axis, rank, -rank,
         rank - 1);
  return normalized;
}

static void check_shape(std::string_view op, const Shape& shape) {
  for (int64_t size : shape)
    if (size < 0) fail(op, "negative size in shape {}", shape_str(shape));
}

Tensor::Tensor(std::shared_ptr<Storage> storage, Shape shape, Shape strides, int64_t offset, DType dtype)
    : storage_(std::move(storage)),
      shape_(std::move(shape)),
      strides_(std::move(strides)),
      offset_(offset),
      dtype_(dtype) {
  if (shape_.size() != strides_.size())
    fail("tensor", "shape {} and strides {} differ in rank", shape_str(shape_), shape_str(strides_));
}

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  check_shape("empty", shape);
  const size_t bytes = static_cast<size_t>(shape_numel(shape)) * dtype_size(dtype);
  return Tensor(std::make_shared<Storage>(bytes, device), shape, contiguous_strides(shape), 0, dtype);
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) {
  return full(shape, 0.0, dtype, device);
}

Tensor Tensor::full(const Shape& shape, double value, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  t.fill_(value);
  return t;
}

template <typename T>
Tensor Tensor::from_vector(const std::vector<T>& values, const Shape& shape, Device device) {
  check_shape("from_vector", shape);
  if (static_cast<int64_t>(values.size()) != shape_numel(shape))
    fail("from_vector", "{} values given for shape {} (expected {})", values.size(), shape_str(shape),
         shape_numel(shape));
  Tensor t = empty(shape, dtype_of_v<T>, device);
  backend::copy_bytes(t.data_ptr(), device, values.data(), Device::cpu(), values.size() * sizeof(T));
  return t;
}

template Tensor Tensor::from_vector(const std::vector<float>&, const Shape&, Device);
template Tensor Tensor::from_vector(const std::vector<double>&, const Shape&, Device);
template Tensor Tensor::from_vector(const std::vector<f16>&, const Shape&, Device);
template Tensor Tensor::from_vector(const std::vector<bf16>&, const Shape&, Device);
template Tensor Tensor::from_vector(const std::vector<int32_t>&, const Shape&, Device);
template Tensor Tensor::from_vector(const std::vector<int64_t>&, const Shape&, Device);
template Tensor Tensor::from_vector(const std::vector<uint8_t>&, const Shape&, Device);

int64_t Tensor::size(int64_t axis) const {
  return shape_[normalize_axis("size", axis, dim())];
}
int64_t Tensor::stride(int64_t axis) const {
  return strides_[normalize_axis("stride", axis, dim())];
}
Device Tensor::device() const {
  return storage_ ? storage_->device() : Device::cpu();
}

bool Tensor::is_contiguous() const {
  int64_t expected = 1;
  for (size_t i = shape_.size(); i-- > 0;) {
    if (shape_[i] == 1) continue;
    if (strides_[i] != expected) return false;
    expected *= shape_[i];
  }
  return true;
}

std::string Tensor::str() const {
  if (!defined()) return "undefined tensor";
  return fmt::format("{}{} {}", dtype_name(dtype_), shape_str(shape_), device().str());
}

void* Tensor::data_ptr() const {
  if (!defined()) fail("tensor", "data of an undefined tensor");
  return static_cast<char*>(storage_->data()) + offset_ * static_cast<int64_t>(dtype_size(dtype_));
}

template <typename T>
T* Tensor::data() const {
  if (dtype_of_v<T> != dtype_)
    fail("tensor", "data<{}>() on a {} tensor", dtype_name(dtype_of_v<T>), dtype_name(dtype_));
  return static_cast<T*>(data_ptr());
}

template float* Tensor::data() const;
template double* Tensor::data() const;
template f16* Tensor::data() const;
template bf16* Tensor::data() const;
template int32_t* Tensor::data() const;
template int64_t* Tensor::data() const;
template uint8_t* Tensor::data() const;

Tensor Tensor::narrow(int64_t axis, int64_t start, int64_t length) const {
  axis = normalize_axis("narrow", axis, dim());
  if (start < 0) start += shape_[axis];
  if (start < 0 || length < 0 || start + length > shape_[axis])
    fail("narrow", "range [{}, {}) is outside axis {} of size {}", start, start + length, axis, shape_[axis]);
  Shape shape = shape_;
  shape[axis] = length;
  return Tensor(storage_, shape, strides_, offset_ + start * strides_[axis], dtype_);
}

Tensor Tensor::slice(int64_t axis, int64_t start, int64_t end, int64_t step) const {
  axis = normalize_axis("slice", axis, dim());
  if (step <= 0) fail("slice", "step must be positive, got {}", step);
  const int64_t size = shape_[axis];
  if (start < 0) start += size;
  if (end < 0) end += size;
  start = std::clamp<int64_t>(start, 0, size);
  end = std::clamp<int64_t>(end, start, size);
  Shape shape = shape_;
  Shape strides = strides_;
  shape[axis] = (end - start + step - 1) / step;
  strides[axis] *= step;
  return Tensor(storage_, shape, strides, offset_ + start * strides_[axis], dtype_);
}

Tensor Tensor::select(int64_t axis, int64_t index) const {
  axis = normalize_axis("select", axis, dim());
  if (index < 0) index += shape_[axis];
  if (index < 0 || index >= shape_[axis])
    fail("select", "index {} is out of range for axis {} of size {}", index, axis, shape_[axis]);
  Shape shape = shape_;
  Shape strides = strides_;
  shape.erase(shape.begin() + axis);
  strides.erase(strides.begin() + axis);
  return Tensor(storage_, shape, strides, offset_ + index * strides_[axis], dtype_);
}

Tensor Tensor::transpose(int64_t axis0, int64_t axis1) const {
  axis0 = normalize_axis("transpose", axis0, dim());
  axis1 = normalize_axis("transpose", axis1, dim());
  Shape shape = shape_;
  Shape strides = strides_;
  std::swap(shape[axis0], shape[axis1]);
  std::swap(strides[axis0], strides[axis1]);
  return Tensor(storage_, shape, strides, offset_, dtype_);
}

Tensor Tensor::permute(const std::vector<int64_t>& order) const {
  if (static_cast<int64_t>(order.size()) != dim())
    fail("permute", "order has {} axes for a tensor of rank {}", order.size(), dim());
  Shape shape(order.size());
  Shape strides(order.size());
  std::vector<bool> used(order.size(), false);
  for (size_t i = 0; i < order.size(); ++i) {
    const int64_t axis = normalize_axis("permute", order[i], dim());
    if (used[axis]) fail("permute", "axis {} appears twice in the order", axis);
    used[axis] = true;
    shape[i] = shape_[axis];
    strides[i] = strides_[axis];
  }
  return Tensor(storage_, shape, strides, offset_, dtype_);
}

// Resolves a single -1 entry and checks the element count.
static Shape infer_shape(std::string_view op, const Shape& requested, int64_t numel, const Shape& from) {
  Shape shape = requested;
  int64_t known = 1;
  int infer_at = -1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      if (infer_at >= 0) fail(op, "more than one -1 in shape {}", shape_str(requested));
      infer_at = static_cast<int>(i);
    } else if (shape[i] < 0) {
      fail(op, "negative size in shape {}", shape_str(requested));
    } else {
      known *= shape[i];
    }
  }
  if (infer_at >= 0) {
    if (known == 0 || numel % known != 0)
      fail(op, "cannot infer -1 in shape {} for {} elements (from {})", shape_str(requested), numel,
           shape_str(from));
    shape[infer_at] = numel / known;
  } else if (known != numel) {
    fail(op, "shape {} has {} elements but the tensor {} has {}", shape_str(requested), known,
         shape_str(from), numel);
  }
  return shape;
}

// Strides for viewing (shape, strides) as `target` without a copy, or an empty result when impossible.
// Walks groups of old axes that merge into groups of new axes; each old group must be contiguous within
// itself.
static bool view_strides(const Shape& shape, const Shape& strides, const Shape& target, Shape& out) {
  out.assign(target.size(), 0);
  if (shape_numel(shape) == 0) {
    out = contiguous_strides(target);
    return true;
  }
  // Drop size-1 axes of the source: they constrain nothing.
  Shape s, st;
  for (size_t i = 0; i < shape.size(); ++i)
    if (shape[i] != 1) {
      s.push_back(shape[i]);
      st.push_back(strides[i]);
    }
  size_t old_i = 0;
  size_t new_i = 0;
  while (new_i < target.size()) {
    if (target[new_i] == 1) {
      out[new_i] = 1;
      ++new_i;
      continue;
    }
    // Gather old axes until their product equals the product of new axes.
    int64_t old_prod = s[old_i];
    size_t old_end = old_i + 1;
    int64_t new_prod = target[new_i];
    size_t new_end = new_i + 1;
    while (old_prod != new_prod) {
      if (old_prod < new_prod) {
        old_prod *= s[old_end++];
      } else {
        new_prod *= target[new_end++];
      }
    }
    for (size_t k = old_i; k + 1 < old_end; ++k)
      if (st[k] != st[k + 1] * s[k + 1]) return false;
    int64_t stride = st[old_end - 1];
    for (size_t k = new_end; k-- > new_i;) {
      out[k] = stride;
      stride *= target[k];
    }
    old_i = old_end;
    new_i = new_end;
  }
  return true;
}

Tensor Tensor::view(const Shape& requested) const {
  const Shape shape = infer_shape("view", requested, numel(), shape_);
  Shape strides;
  if (!view_strides(shape_, strides_, shape, strides))
    fail("view", "a tensor of shape {} with strides {} cannot be viewed as {} without a copy (use reshape)",
         shape_str(shape_), shape_str(strides_), shape_str(shape));
  return Tensor(storage_, shape, strides, offset_, dtype_);
}

Tensor Tensor::reshape(const Shape& requested) const {
  const Shape shape = infer_shape("reshape", requested, numel(), shape_);
  Shape strides;
  if (view_strides(shape_, strides_, shape, strides))
    return Tensor(storage_, shape, strides, offset_, dtype_);
  return contiguous().view(shape);
}

Tensor Tensor::expand(const Shape& shape) const {
  if (shape.size() < shape_.size())
    fail("expand", "cannot expand {} to the lower-rank shape {}", shape_str(shape_), shape_str(shape));
  const size_t lead = shape.size() - shape_.size();
  Shape strides(shape.size(), 0);
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i < lead) continue;
    const int64_t size = shape_[i - lead];
    if (size == shape[i]) {
      strides[i] = strides_[i - lead];
    } else if (size != 1) {
      fail("expand", "cannot expand {} to {} (axis {} has size {}, expected 1 or {})", shape_str(shape_),
           shape_str(shape), i, size, shape[i]);
    }
  }
  return Tensor(storage_, shape, strides, offset_, dtype_);
}

Tensor Tensor::unsqueeze(int64_t axis) const {
  axis = normalize_axis("unsqueeze", axis, dim() + 1);
  Shape shape = shape_;
  Shape strides = strides_;
  const int64_t stride = axis < dim() ? strides_[axis] * shape_[axis] : 1;
  shape.insert(shape.begin() + axis, 1);
  strides.insert(strides.begin() + axis, stride);
  return Tensor(storage_, shape, strides, offset_, dtype_);
}

Tensor Tensor::squeeze(int64_t axis) const {
  axis = normalize_axis("squeeze", axis, dim());
  if (shape_[axis] != 1) fail("squeeze", "axis {} has size {}, expected 1", axis, shape_[axis]);
  return select(axis, 0);
}

Tensor Tensor::contiguous() const {
  return is_contiguous() ? *this : clone();
}

Tensor Tensor::clone() const {
  Tensor out = empty(shape_, dtype_, device());
  out.copy_(*this);
  return out;
}

Tensor Tensor::to(Device device) const {
  if (device == this->device()) return *this;
  Tensor out = empty(shape_, dtype_, device);
  out.copy_(*this);
  return out;
}

Tensor Tensor::to(DType dtype) const {
  if (dtype == dtype_) return *this;
  Tensor out = empty(shape_, dtype, device());
  out.copy_(*this);
  return out;
}

void Tensor::copy_(const Tensor& src) const {
  if (!defined() || !src.defined()) fail("copy", "undefined tensor");
  const Tensor source = src.shape() == shape_ ? src : src.expand(shape_);
  if (source.device() == device()) {
    ops::copy_same_device(*this, source);
    return;
  }
  // Across devices only raw bytes move: make the source dense first, then convert on the destination device.
  const Tensor dense = source.contiguous();
  if (is_contiguous() && dtype_ == dense.dtype()) {
    backend::copy_bytes(data_ptr(), device(), dense.data_ptr(), dense.device(), nbytes());
    return;
  }
  Tensor staged = empty(shape_, dense.dtype(), device());
  backend::copy_bytes(staged.data_ptr(), device(), dense.data_ptr(), dense.device(), dense.nbytes());
  ops::copy_same_device(*this, staged);
}

void Tensor::fill_(double value) const {
  ops::fill(*this, value);
}

template <typename T>
std::vector<T> Tensor::to_vector() const {
  const Tensor host = to(dtype_of_v<T>).to(Device::cpu()).contiguous();
  std::vector<T> values(static_cast<size_t>(numel()));
  if (!values.empty()) std::memcpy(values.data(), host.data_ptr(), values.size() * sizeof(T));
  return values;
}

template std::vector<float> Tensor::to_vector() const;
template std::vector<double> Tensor::to_vector() const;
template std::vector<f16> Tensor::to_vector() const;
template std::vector<bf16> Tensor::to_vector() const;
template std::vector<int32_t> Tensor::to_vector() const;
template std::vector<int64_t> Tensor::to_vector() const;
template std::vector<uint8_t> Tensor::to_vector() const;

double Tensor::item() const {
  if (numel() != 1) fail("item", "tensor {} has {} elements, expected exactly 1", str(), numel());
  return to_vector<double>()[0];
}

}  // namespace wick
