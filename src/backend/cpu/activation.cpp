// SiLU, GELU (erf and tanh forms) and SwiGLU, forward and backward, elementwise on dense buffers.
#include <cmath>

#include "backend/cpu/compute.h"
#include "backend/cpu/kernels.h"
#include "core/parallel.h"

namespace wick::cpu {
namespace {

constexpr int64_t kGrain = 16384;

template <typename T>
T sigmoid(T x) {
  return T(1) / (T(1) + std::exp(-x));
}

template <typename T>
T forward(Unary kind, T x) {
  switch (kind) {
    case Unary::silu:
      return x * sigmoid(x);
    case Unary::gelu_erf:
      return T(0.5) * x * (T(1) + std::erf(x * T(M_SQRT1_2)));
    case Unary::gelu_tanh: {
      const T k = T(M_2_SQRTPI * M_SQRT1_2);  // sqrt(2/pi)
      return T(0.5) * x * (T(1) + std::tanh(k * (x + T(0.044715) * x * x * x)));
    }
  }
  return x;
}

template <typename T>
T derivative(Unary kind, T x) {
  switch (kind) {
    case Unary::silu: {
      const T s = sigmoid(x);
      return s * (T(1) + x * (T(1) - s));
    }
    case Unary::gelu_erf: {
      const T pdf = std::exp(T(-0.5) * x * x) * T(0.5 * M_2_SQRTPI * M_SQRT1_2);  // 1/sqrt(2pi)
      return T(0.5) * (T(1) + std::erf(x * T(M_SQRT1_2))) + x * pdf;
    }
    case Unary::gelu_tanh: {
      const T k = T(M_2_SQRTPI * M_SQRT1_2);
      const T t = std::tanh(k * (x + T(0.044715) * x * x * x));
      return T(0.5) * (T(1) + t) + T(0.5) * x * (T(1) - t * t) * k * (T(1) + T(3 * 0.044715) * x * x);
    }
  }
  return T(1);
}

// Runs body(i) for every element index of dense buffers, in parallel.
template <typename Body>
void elementwise(int64_t n, Body&& body) {
  parallel_for(n, kGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) body(i);
  });
}

}  // namespace

void unary(Unary kind, const Tensor& x, const Tensor& y) {
  with_compute_type(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const Tensor xd = dense<T>(x);
    OutputBuffer<T> out(y);
    const T* in = xd.data<T>();
    T* o = out.data();
    elementwise(x.numel(), [&](int64_t i) { o[i] = forward(kind, in[i]); });
    out.commit();
  });
}

void unary_backward(Unary kind, const Tensor& x, const Tensor& dy, const Tensor& dx) {
  with_compute_type(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const Tensor xd = dense<T>(x);
    const Tensor gd = dense<T>(dy);
    OutputBuffer<T> out(dx);
    const T* in = xd.data<T>();
    const T* g = gd.data<T>();
    T* o = out.data();
    elementwise(x.numel(), [&](int64_t i) { o[i] = g[i] * derivative(kind, in[i]); });
    out.commit();
  });
}

void swiglu(const Tensor& gate, const Tensor& up, const Tensor& y) {
  with_compute_type(gate.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const Tensor gd = dense<T>(gate);
    const Tensor ud = dense<T>(up);
    OutputBuffer<T> out(y);
    const T* g = gd.data<T>();
    const T* u = ud.data<T>();
    T* o = out.data();
    elementwise(gate.numel(), [&](int64_t i) { o[i] = forward(Unary::silu, g[i]) * u[i]; });
    out.commit();
  });
}

void swiglu_backward(const Tensor& gate, const Tensor& up, const Tensor& dy, const Tensor& dgate,
                     const Tensor& dup) {
  with_compute_type(gate.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const Tensor gd = dense<T>(gate);
    const Tensor ud = dense<T>(up);
    const Tensor dd = dense<T>(dy);
    OutputBuffer<T> out_gate(dgate);
    OutputBuffer<T> out_up(dup);
    const T* g = gd.data<T>();
    const T* u = ud.data<T>();
    const T* d = dd.data<T>();
    T* og = out_gate.data();
    T* ou = out_up.data();
    elementwise(gate.numel(), [&](int64_t i) {
      og[i] = d[i] * u[i] * derivative(Unary::silu, g[i]);
      ou[i] = d[i] * forward(Unary::silu, g[i]);
    });
    out_gate.commit();
    out_up.commit();
  });
}

}  // namespace wick::cpu
