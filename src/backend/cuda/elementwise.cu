// Elementwise kernels: activations (SiLU, GELU, SwiGLU) forward and backward on dense tensors, binary
// arithmetic with broadcasting through per-operand strides (rank <= 8), scaling, and the sum that reverses a
// broadcast (one thread per output element, summing the elements that were broadcast from it in a fixed
// order).
#include "backend/cuda/activation.cuh"
#include "backend/cuda/common.cuh"
#include "backend/cuda/indexing.cuh"
#include "backend/cuda/kernels.h"
#include "backend/cuda/row_stride.h"

namespace wick::cuda {
namespace {

using Broadcast = StridedLayout<2>;  // operands a and b over the output's (dense) shape

#define WICK_GRID_STRIDE_LOOP(i, n)                                         \
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < (n); \
       i += int64_t(gridDim.x) * blockDim.x)

template <typename T, typename A>
__global__ void unary_kernel(Unary kind, const T* x, const T* dy, T* out, int64_t n) {
  WICK_GRID_STRIDE_LOOP(i, n) {
    const A v = load_as<A>(x + i);
    out[i] = store_as<T>(dy ? load_as<A>(dy + i) * activation_derivative(kind, v) : activation(kind, v));
  }
}

template <typename T, typename A>
__global__ void swiglu_kernel(const T* gate, const T* up, const T* dy, T* out0, T* out1, int64_t n) {
  WICK_GRID_STRIDE_LOOP(i, n) {
    const A g = load_as<A>(gate + i), u = load_as<A>(up + i);
    if (dy) {
      const A d = load_as<A>(dy + i);
      out0[i] = store_as<T>(d * u * activation_derivative(Unary::silu, g));
      out1[i] = store_as<T>(d * activation(Unary::silu, g));
    } else {
      out0[i] = store_as<T>(activation(Unary::silu, g) * u);
    }
  }
}

// 16-bit rows in 16-byte vectors: each thread loads whole vectors, so the kernels run at copy speed. Rows
// are `cols` wide with their own row strides (a narrowed half of a packed [gate; up] product needs no copy).
struct VectorRows {
  int64_t vectors_per_row;  // cols / 8
  int64_t stride[5];        // row strides in elements, one per operand (inputs first, then outputs)
  __device__ __forceinline__ int64_t offset(int64_t i, int which) const {
    return (i / vectors_per_row) * stride[which] + (i % vectors_per_row) * 8;
  }
};

template <typename T>
__global__ void unary_vector_kernel(Unary kind, const T* x, const T* dy, T* out, int64_t vectors) {
  WICK_GRID_STRIDE_LOOP(i, vectors) {
    float v[8], r[8];
    load_vector(x, i, v);
    if (dy) {
      float g[8];
      load_vector(dy, i, g);
#pragma unroll
      for (int e = 0; e < 8; ++e) r[e] = g[e] * activation_derivative(kind, v[e]);
    } else {
#pragma unroll
      for (int e = 0; e < 8; ++e) r[e] = activation(kind, v[e]);
    }
    store_vector(out, i, r);
  }
}

template <typename T>
__global__ void swiglu_vector_kernel(const T* gate, const T* up, T* out, VectorRows rows, int64_t vectors) {
  WICK_GRID_STRIDE_LOOP(i, vectors) {
    float g[8], u[8];
    load_vector(gate + rows.offset(i, 0), 0, g);
    load_vector(up + rows.offset(i, 1), 0, u);
#pragma unroll
    for (int e = 0; e < 8; ++e) g[e] = activation(Unary::silu, g[e]) * u[e];
    store_vector(out + rows.offset(i, 2), 0, g);
  }
}

// SwiGLU's gradients: dgate = dy·up·silu'(gate), dup = dy·silu(gate); operands gate, up, dy, dgate, dup.
template <typename T>
__global__ void swiglu_backward_vector_kernel(const T* gate, const T* up, const T* dy, T* dgate, T* dup,
                                              VectorRows rows, int64_t vectors) {
  WICK_GRID_STRIDE_LOOP(i, vectors) {
    float g[8], u[8], d[8], dg[8], du[8];
    load_vector(gate + rows.offset(i, 0), 0, g);
    load_vector(up + rows.offset(i, 1), 0, u);
    load_vector(dy + rows.offset(i, 2), 0, d);
#pragma unroll
    for (int e = 0; e < 8; ++e) {
      dg[e] = d[e] * u[e] * activation_derivative(Unary::silu, g[e]);
      du[e] = d[e] * activation(Unary::silu, g[e]);
    }
    store_vector(dgate + rows.offset(i, 3), 0, dg);
    store_vector(dup + rows.offset(i, 4), 0, du);
  }
}

template <typename T>
__global__ void add_vector_kernel(const T* a, const T* b, T* out, int64_t vectors) {
  WICK_GRID_STRIDE_LOOP(i, vectors) {
    float x[8], y[8];
    load_vector(a, i, x);
    load_vector(b, i, y);
#pragma unroll
    for (int e = 0; e < 8; ++e) x[e] += y[e];
    store_vector(out, i, x);
  }
}

template <typename T, typename A, typename Index>
__global__ void binary_kernel(Binary kind, const T* a, const T* b, T* out, Broadcast layout, int64_t n) {
  WICK_GRID_STRIDE_LOOP(i, n) {
    int64_t at[2];
    layout.offsets<Index>(i, at);
    const int64_t oa = at[0], ob = at[1];
    const A x = load_as<A>(a + oa), y = load_as<A>(b + ob);
    A r;
    switch (kind) {
      case Binary::add:
        r = x + y;
        break;
      case Binary::sub:
        r = x - y;
        break;
      case Binary::mul:
        r = x * y;
        break;
      default:
        r = x / y;
        break;
    }
    out[i] = store_as<T>(r);
  }
}

template <typename T, typename A>
__global__ void scale_kernel(const T* x, T* y, A factor, int64_t n) {
  WICK_GRID_STRIDE_LOOP(i, n) {
    y[i] = store_as<T>(load_as<A>(x + i) * factor);
  }
}

// Output element o sums x over the reduced axes: kept axes index from o, reduced axes from the loop counter.
struct Reduction {
  int rank;
  int64_t x_strides[kMaxRank];
  int64_t kept_sizes[kMaxRank];     // x sizes on kept axes, 1 on reduced ones
  int64_t reduced_sizes[kMaxRank];  // x sizes on reduced axes, 1 on kept ones
};

template <typename T, typename A>
__global__ void sum_to_shape_kernel(const T* x, A* out, Reduction r, int64_t outputs, int64_t per_output) {
  WICK_GRID_STRIDE_LOOP(o, outputs) {
    int64_t base = 0, rest = o;
    for (int axis = r.rank - 1; axis >= 0; --axis) {
      base += (rest % r.kept_sizes[axis]) * r.x_strides[axis];
      rest /= r.kept_sizes[axis];
    }
    A total = 0;
    for (int64_t k = 0; k < per_output; ++k) {
      int64_t offset = base, kr = k;
      for (int axis = r.rank - 1; axis >= 0; --axis) {
        offset += (kr % r.reduced_sizes[axis]) * r.x_strides[axis];
        kr /= r.reduced_sizes[axis];
      }
      total += load_as<A>(x + offset);
    }
    out[o] = total;
  }
}

unsigned grid_for(int64_t n) {
  return static_cast<unsigned>(std::min<int64_t>(ceil_div(n, 256), 65536));
}

bool vector_aligned(const Tensor& t) {
  return t.defined() && (t.dtype() == DType::bf16 || t.dtype() == DType::f16) &&
         reinterpret_cast<uintptr_t>(t.data_ptr()) % 16 == 0;
}

// Dense 16-bit tensors of a whole number of 16-byte vectors.
bool dense_vectors(std::initializer_list<const Tensor*> tensors) {
  for (const Tensor* t : tensors)
    if (t->defined() && (!vector_aligned(*t) || !t->is_contiguous() || t->numel() % 8 != 0)) return false;
  return true;
}

// Operands of one shape as 16-byte-aligned rows of whole vectors, with row strides (at most 5).
bool vector_rows(std::initializer_list<const Tensor*> operands, VectorRows& rows) {
  const Tensor& first = **operands.begin();
  const int64_t cols = first.size(-1);
  if (first.numel() == 0 || cols % 8 != 0) return false;
  int i = 0;
  for (const Tensor* t : operands) {
    if (t->shape() != first.shape()) return false;
    rows.stride[i] = row_stride(*t);
    if (!vector_aligned(*t) || rows.stride[i] < 0 || rows.stride[i] % 8 != 0) return false;
    ++i;
  }
  rows.vectors_per_row = cols / 8;
  return true;
}

template <typename F>
void with_half_type(DType dtype, F&& body) {
  if (dtype == DType::bf16)
    body(__nv_bfloat16{});
  else
    body(__half{});
}

}  // namespace

void unary(Unary kind, const Tensor& x, const Tensor& y) {
  if (dense_vectors({&x, &y})) {
    const int64_t vectors = x.numel() / 8;
    with_half_type(x.dtype(), [&](auto tag) {
      using T = decltype(tag);
      unary_vector_kernel<T>
          <<<grid_for(vectors), 256, 0, stream_of(x)>>>(kind, ptr<const T>(x), nullptr, ptr<T>(y), vectors);
    });
    check_launch("activation");
    return;
  }
  const Tensor xd = x.contiguous();
  with_float_type(x.dtype(), "activation", [&](auto tag) {
    using T = decltype(tag);
    unary_kernel<T, typename Accumulate<T>::type><<<grid_for(x.numel()), 256, 0, stream_of(x)>>>(
        kind, ptr<const T>(xd), nullptr, ptr<T>(y), x.numel());
  });
  check_launch("activation");
}

void unary_backward(Unary kind, const Tensor& x, const Tensor& dy, const Tensor& dx) {
  if (dense_vectors({&x, &dy, &dx})) {
    const int64_t vectors = x.numel() / 8;
    with_half_type(x.dtype(), [&](auto tag) {
      using T = decltype(tag);
      unary_vector_kernel<T><<<grid_for(vectors), 256, 0, stream_of(x)>>>(
          kind, ptr<const T>(x), ptr<const T>(dy), ptr<T>(dx), vectors);
    });
    check_launch("activation_backward");
    return;
  }
  const Tensor xd = x.contiguous(), gd = dy.contiguous();
  with_float_type(x.dtype(), "activation_backward", [&](auto tag) {
    using T = decltype(tag);
    unary_kernel<T, typename Accumulate<T>::type><<<grid_for(x.numel()), 256, 0, stream_of(x)>>>(
        kind, ptr<const T>(xd), ptr<const T>(gd), ptr<T>(dx), x.numel());
  });
  check_launch("activation_backward");
}

void swiglu(const Tensor& gate, const Tensor& up, const Tensor& y) {
  VectorRows rows{};
  if (vector_rows({&gate, &up, &y}, rows)) {
    const int64_t vectors = gate.numel() / 8;
    with_half_type(gate.dtype(), [&](auto tag) {
      using T = decltype(tag);
      swiglu_vector_kernel<T><<<grid_for(vectors), 256, 0, stream_of(gate)>>>(
          ptr<const T>(gate), ptr<const T>(up), ptr<T>(y), rows, vectors);
    });
    check_launch("swiglu");
    return;
  }
  const Tensor gd = gate.contiguous(), ud = up.contiguous();
  with_float_type(gate.dtype(), "swiglu", [&](auto tag) {
    using T = decltype(tag);
    swiglu_kernel<T, typename Accumulate<T>::type><<<grid_for(gate.numel()), 256, 0, stream_of(gate)>>>(
        ptr<const T>(gd), ptr<const T>(ud), nullptr, ptr<T>(y), nullptr, gate.numel());
  });
  check_launch("swiglu");
}

void swiglu_backward(const Tensor& gate, const Tensor& up, const Tensor& dy, const Tensor& dgate,
                     const Tensor& dup) {
  VectorRows rows{};
  if (vector_rows({&gate, &up, &dy, &dgate, &dup}, rows)) {
    const int64_t vectors = gate.numel() / 8;
    with_half_type(gate.dtype(), [&](auto tag) {
      using T = decltype(tag);
      swiglu_backward_vector_kernel<T><<<grid_for(vectors), 256, 0, stream_of(gate)>>>(
          ptr<const T>(gate), ptr<const T>(up), ptr<const T>(dy), ptr<T>(dgate), ptr<T>(dup), rows, vectors);
    });
    check_launch("swiglu_backward");
    return;
  }
  const Tensor gd = gate.contiguous(), ud = up.contiguous(), dd = dy.contiguous();
  const bool dense_out = dgate.is_contiguous() && dup.is_contiguous();
  const Tensor dg = dense_out ? dgate : Tensor::empty(gate.shape(), gate.dtype(), gate.device());
  const Tensor du = dense_out ? dup : Tensor::empty(gate.shape(), gate.dtype(), gate.device());
  with_float_type(gate.dtype(), "swiglu_backward", [&](auto tag) {
    using T = decltype(tag);
    swiglu_kernel<T, typename Accumulate<T>::type><<<grid_for(gate.numel()), 256, 0, stream_of(gate)>>>(
        ptr<const T>(gd), ptr<const T>(ud), ptr<const T>(dd), ptr<T>(dg), ptr<T>(du), gate.numel());
  });
  check_launch("swiglu_backward");
  if (!dense_out) dgate.copy_(dg), dup.copy_(du);
}

void binary(Binary kind, const Tensor& a, const Tensor& b, const Tensor& out) {
  const int64_t n = out.numel();
  if (n == 0) return;
  if (kind == Binary::add && a.shape() == out.shape() && b.shape() == out.shape() &&
      dense_vectors({&a, &b, &out})) {
    with_half_type(out.dtype(), [&](auto tag) {
      using T = decltype(tag);
      add_vector_kernel<T>
          <<<grid_for(n / 8), 256, 0, stream_of(out)>>>(ptr<const T>(a), ptr<const T>(b), ptr<T>(out), n / 8);
    });
    check_launch("binary");
    return;
  }
  if (out.dim() > kMaxRank) raise("binary", "CUDA elementwise ops support rank <= 8, got " + out.str());
  const Tensor ae = a.expand(out.shape()), be = b.expand(out.shape());
  Broadcast layout{};
  layout.rank = static_cast<int>(out.dim());
  for (int i = 0; i < layout.rank; ++i) {
    layout.sizes[i] = out.size(i);
    layout.strides[0][i] = ae.stride(i);
    layout.strides[1][i] = be.stride(i);
  }
  layout.coalesce();
  with_float_type(out.dtype(), "binary", [&](auto tag) {
    using T = decltype(tag);
    using A = typename Accumulate<T>::type;
    if (n < (int64_t{1} << 31)) {
      binary_kernel<T, A, uint32_t><<<grid_for(n), 256, 0, stream_of(out)>>>(
          kind, ptr<const T>(ae), ptr<const T>(be), ptr<T>(out), layout, n);
    } else {
      binary_kernel<T, A, int64_t><<<grid_for(n), 256, 0, stream_of(out)>>>(
          kind, ptr<const T>(ae), ptr<const T>(be), ptr<T>(out), layout, n);
    }
  });
  check_launch("binary");
}

void scale(const Tensor& x, double factor, const Tensor& y) {
  const Tensor xd = x.contiguous();
  with_float_type(x.dtype(), "scale", [&](auto tag) {
    using T = decltype(tag);
    using A = typename Accumulate<T>::type;
    scale_kernel<T, A><<<grid_for(x.numel()), 256, 0, stream_of(x)>>>(ptr<const T>(xd), ptr<T>(y),
                                                                      static_cast<A>(factor), x.numel());
  });
  check_launch("scale");
}

void sum_to_shape(const Tensor& x, const Tensor& out) {
  if (x.dim() > kMaxRank) raise("sum_to_shape", "CUDA supports rank <= 8, got " + x.str());
  Reduction r{};
  r.rank = static_cast<int>(x.dim());
  const int64_t lead = x.dim() - out.dim();
  int64_t per_output = 1;
  for (int i = 0; i < r.rank; ++i) {
    r.x_strides[i] = x.stride(i);
    const bool kept = i >= lead && out.size(i - lead) == x.size(i);
    r.kept_sizes[i] = kept ? x.size(i) : 1;
    r.reduced_sizes[i] = kept ? 1 : x.size(i);
    per_output *= r.reduced_sizes[i];
  }
  const int64_t outputs = out.numel();
  if (outputs == 0) return;
  with_float_type(x.dtype(), "sum_to_shape", [&](auto tag) {
    using T = decltype(tag);
    using A = typename Accumulate<T>::type;
    sum_to_shape_kernel<T, A>
        <<<grid_for(outputs), 256, 0, stream_of(x)>>>(ptr<const T>(x), ptr<A>(out), r, outputs, per_output);
  });
  check_launch("sum_to_shape");
}

}  // namespace wick::cuda
