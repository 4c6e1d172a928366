// Staging between tensors of any float dtype and the dense f32/f64 buffers CPU kernels compute on.
#pragma once

#include <cstdint>
#include <type_traits>

#include "wick/error.h"
#include "wick/tensor.h"

namespace wick::cpu {

// f64 data computes in double; f32, f16 and bf16 in float.
template <typename F>
void with_compute_type(DType dtype, F&& body) {
  if (dtype == DType::f64) {
    body(double{});
  } else {
    body(float{});
  }
}

// A dense tensor of element type T holding x's values (x itself when it already is one).
template <typename T>
Tensor dense(const Tensor& x) {
  if (x.dtype() == dtype_of_v<T> && x.is_contiguous()) return x;
  return x.to(dtype_of_v<T>).contiguous();
}

// A dense T buffer a kernel writes; commit() moves it into the real output when they differ.
template <typename T>
class OutputBuffer {
 public:
  explicit OutputBuffer(const Tensor& target) : target_(target) {
    direct_ = target.dtype() == dtype_of_v<T> && target.is_contiguous();
    work_ = direct_ ? target : Tensor::empty(target.shape(), dtype_of_v<T>);
  }
  T* data() const { return work_.data<T>(); }
  void commit() const {
    if (!direct_) target_.copy_(work_);
  }

 private:
  Tensor target_;
  Tensor work_;
  bool direct_ = false;
};

// Index values as int64 regardless of their stored type.
inline Tensor dense_indices(const Tensor& ids) {
  return dense<int64_t>(ids);
}

}  // namespace wick::cpu
