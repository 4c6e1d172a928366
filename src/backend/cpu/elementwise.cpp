// Broadcasting binary arithmetic, scaling, and the sum that reverses a broadcast.
#include "backend/cpu/compute.h"
#include "backend/cpu/kernels.h"
#include "backend/cpu/strided.h"
#include "core/parallel.h"

namespace wick::cpu {
namespace {

template <typename T>
T apply(Binary kind, T a, T b) {
  switch (kind) {
    case Binary::add:
      return a + b;
    case Binary::sub:
      return a - b;
    case Binary::mul:
      return a * b;
    case Binary::div:
      return a / b;
  }
  return a;
}

}  // namespace

void binary(Binary kind, const Tensor& a, const Tensor& b, const Tensor& out) {
  with_compute_type(a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    // Operands keep their (broadcast) strides; only half types are widened first.
    const Tensor ad = (a.dtype() == dtype_of_v<T> ? a : a.to(dtype_of_v<T>)).expand(out.shape());
    const Tensor bd = (b.dtype() == dtype_of_v<T> ? b : b.to(dtype_of_v<T>)).expand(out.shape());
    OutputBuffer<T> result(out);
    const T* pa = ad.data<T>();
    const T* pb = bd.data<T>();
    T* po = result.data();
    const Shape& shape = out.shape();
    const Shape out_strides = contiguous_strides(shape);
    const int64_t sa = shape.empty() ? 0 : ad.strides().back();
    const int64_t sb = shape.empty() ? 0 : bd.strides().back();
    const int64_t inner = shape.empty() ? 1 : std::max<int64_t>(shape.back(), 1);
    parallel_for(row_count(shape), std::max<int64_t>(1, 16384 / inner), [&](int64_t begin, int64_t end) {
      for_each_row<3>(shape, {&out_strides, &ad.strides(), &bd.strides()}, begin, end,
                      [&](const std::array<int64_t, 3>& at, int64_t n) {
                        for (int64_t i = 0; i < n; ++i)
                          po[at[0] + i] = apply(kind, pa[at[1] + i * sa], pb[at[2] + i * sb]);
                      });
    });
    result.commit();
  });
}

void scale(const Tensor& x, double factor, const Tensor& y) {
  with_compute_type(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const Tensor xd = dense<T>(x);
    OutputBuffer<T> out(y);
    const T* in = xd.data<T>();
    T* o = out.data();
    const T f = static_cast<T>(factor);
    parallel_for(x.numel(), 16384, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) o[i] = in[i] * f;
    });
    out.commit();
  });
}

void sum_to_shape(const Tensor& x, const Tensor& out) {
  with_compute_type(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const Tensor xd = dense<T>(x);
    OutputBuffer<T> result(out);
    T* po = result.data();
    for (int64_t i = 0; i < out.numel(); ++i) po[i] = T(0);
    // Output strides over x's shape, 0 on broadcast axes: every x element adds into the slot it came from.
    const Shape out_strides = contiguous_strides(out.shape());
    const int64_t lead = x.dim() - out.dim();
    Shape target_strides(x.shape().size(), 0);
    for (int64_t i = lead; i < x.dim(); ++i)
      if (out.shape()[i - lead] == x.shape()[i]) target_strides[i] = out_strides[i - lead];
    const Shape x_strides = contiguous_strides(x.shape());
    const T* px = xd.data<T>();
    const int64_t step = x.dim() == 0 ? 0 : target_strides.back();
    for_each_row<2>(x.shape(), {&target_strides, &x_strides}, 0, row_count(x.shape()),
                    [&](const std::array<int64_t, 2>& at, int64_t n) {
                      for (int64_t i = 0; i < n; ++i) po[at[0] + i * step] += px[at[1] + i];
                    });
    result.commit();
  });
}

}  // namespace wick::cpu
