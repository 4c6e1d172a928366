// Strided copy with dtype conversion, and fill. A dense same-dtype copy is one cudaMemcpyAsync, a same-dtype
// copy of rows (a column block of a wider matrix, either side) one cudaMemcpy2DAsync, a zero fill of either
// form a memset; anything else is one thread per element, decomposing the linear index over the shape
// (rank <= 8) to find both offsets.
#include <cstring>

#include "backend/cuda/common.cuh"
#include "backend/cuda/indexing.cuh"
#include "backend/cuda/kernels.h"

namespace wick::cuda {
namespace {

using Layout = StridedLayout<2>;  // operand 0: destination, 1: source

template <typename To, typename From>
__device__ __forceinline__ To convert(From v) {
  if constexpr (std::is_same_v<To, From>) {
    return v;
  } else if constexpr (std::is_same_v<To, __half> || std::is_same_v<To, __nv_bfloat16>) {
    if constexpr (std::is_same_v<From, double> && std::is_same_v<To, __half>) {
      return __double2half(v);  // one rounding: through float would round twice
    } else if constexpr (std::is_same_v<From, double>) {
      return __double2bfloat16(v);
    } else {
      return from_float<To>(to_float(v));
    }
  } else if constexpr (std::is_same_v<From, __half> || std::is_same_v<From, __nv_bfloat16>) {
    return static_cast<To>(to_float(v));
  } else {
    return static_cast<To>(v);
  }
}

template <typename To, typename From, typename Index>
__global__ void copy_kernel(To* dst, const From* src, Layout layout, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    int64_t at[2];
    layout.offsets<Index>(i, at);
    dst[at[0]] = convert<To>(src[at[1]]);
  }
}

template <typename T, typename Index>
__global__ void fill_kernel(T* dst, Layout layout, T value, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    int64_t at[2];
    layout.offsets<Index>(i, at);
    dst[at[0]] = value;
  }
}

// Sets *differ when any 16-byte word of a and b differs.
__global__ void compare_kernel(const uint4* a, const uint4* b, int64_t words, int* differ) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < words;
       i += int64_t(gridDim.x) * blockDim.x) {
    const uint4 x = a[i], y = b[i];
    if (x.x != y.x || x.y != y.y || x.z != y.z || x.w != y.w) *differ = 1;
  }
}

template <typename F>
void with_any_type(DType dtype, F&& body) {
  switch (dtype) {
    case DType::f32:
      return body(float{});
    case DType::f64:
      return body(double{});
    case DType::f16:
      return body(__half{});
    case DType::bf16:
      return body(__nv_bfloat16{});
    case DType::i32:
      return body(int32_t{});
    case DType::i64:
      return body(int64_t{});
    case DType::u8:
    case DType::boolean:
      return body(uint8_t{});
  }
}

Layout make_layout(const Tensor& dst, const Tensor* src) {
  if (dst.dim() > kMaxRank) raise("copy", "CUDA copy supports rank <= 8, got " + dst.str());
  Layout layout{};
  layout.rank = static_cast<int>(dst.dim());
  for (int i = 0; i < layout.rank; ++i) {
    layout.sizes[i] = dst.size(i);
    layout.strides[0][i] = dst.stride(i);
    layout.strides[1][i] = src ? src->stride(i) : 0;
  }
  layout.coalesce();
  return layout;
}

// Whether the (coalesced) layout is rows of contiguous elements: rows × cols, each operand's rows evenly
// spaced.
bool row_blocks(const Layout& layout, int operands) {
  if (layout.rank == 1) return layout.strides[0][0] == 1 && (operands == 1 || layout.strides[1][0] == 1);
  if (layout.rank != 2) return false;
  for (int k = 0; k < operands; ++k)
    if (layout.strides[k][1] != 1 || layout.strides[k][0] < layout.sizes[1]) return false;
  return true;
}

bool small(int64_t n) {
  return n < (int64_t{1} << 31);
}

int grid_for(int64_t n) {
  return static_cast<int>(std::min<int64_t>(ceil_div(n, 256), 65536));
}

}  // namespace

void copy(const Tensor& dst, const Tensor& src) {
  const int64_t n = dst.numel();
  if (n == 0) return;
  DeviceGuard guard(dst.device().index);
  if (dst.dtype() == src.dtype() && dst.is_contiguous() && src.is_contiguous()) {
    check(cudaMemcpyAsync(dst.data_ptr(), src.data_ptr(), dst.nbytes(), cudaMemcpyDeviceToDevice,
                          stream_of(dst)),
          "copy", "cudaMemcpyAsync");
    return;
  }
  const Layout layout = make_layout(dst, &src);
  if (dst.dtype() == src.dtype() && row_blocks(layout, 2)) {
    const size_t element = dtype_size(dst.dtype());
    const int64_t rows = layout.rank == 2 ? layout.sizes[0] : 1, cols = layout.sizes[layout.rank - 1];
    const int64_t dst_pitch = layout.rank == 2 ? layout.strides[0][0] : cols;
    const int64_t src_pitch = layout.rank == 2 ? layout.strides[1][0] : cols;
    check(cudaMemcpy2DAsync(dst.data_ptr(), dst_pitch * element, src.data_ptr(), src_pitch * element,
                            cols * element, rows, cudaMemcpyDeviceToDevice, stream_of(dst)),
          "copy", "cudaMemcpy2DAsync");
    return;
  }
  with_any_type(dst.dtype(), [&](auto to) {
    with_any_type(src.dtype(), [&](auto from) {
      using To = decltype(to);
      using From = decltype(from);
      if (small(n)) {
        copy_kernel<To, From, uint32_t>
            <<<grid_for(n), 256, 0, stream_of(dst)>>>(ptr<To>(dst), ptr<const From>(src), layout, n);
      } else {
        copy_kernel<To, From, int64_t>
            <<<grid_for(n), 256, 0, stream_of(dst)>>>(ptr<To>(dst), ptr<const From>(src), layout, n);
      }
    });
  });
  check_launch("copy");
}

void fill(const Tensor& dst, double value) {
  const int64_t n = dst.numel();
  if (n == 0) return;
  DeviceGuard guard(dst.device().index);
  const Layout layout = make_layout(dst, nullptr);
  if (value == 0.0 && !std::signbit(value) && row_blocks(layout, 1)) {  // +0 is all-zero bytes in every dtype
    const size_t element = dtype_size(dst.dtype());
    const int64_t rows = layout.rank == 2 ? layout.sizes[0] : 1, cols = layout.sizes[layout.rank - 1];
    const int64_t pitch = layout.rank == 2 ? layout.strides[0][0] : cols;
    check(cudaMemset2DAsync(dst.data_ptr(), pitch * element, 0, cols * element, rows, stream_of(dst)), "fill",
          "cudaMemset2DAsync");
    return;
  }
  with_any_type(dst.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T v;
    if constexpr (std::is_same_v<T, __half>) {
      v = __float2half_rn(static_cast<float>(value));
    } else if constexpr (std::is_same_v<T, __nv_bfloat16>) {
      v = __float2bfloat16_rn(static_cast<float>(value));
    } else {
      v = static_cast<T>(value);
    }
    if (small(n)) {
      fill_kernel<T, uint32_t><<<grid_for(n), 256, 0, stream_of(dst)>>>(ptr<T>(dst), layout, v, n);
    } else {
      fill_kernel<T, int64_t><<<grid_for(n), 256, 0, stream_of(dst)>>>(ptr<T>(dst), layout, v, n);
    }
  });
  check_launch("fill");
}

bool same_bytes(const void* a, const void* b, size_t bytes, Device device) {
  DeviceGuard guard(device.index);
  cudaStream_t stream = stream_for(device.index);
  // Whole 16-byte words (the allocator aligns every buffer to 256 bytes), then the tail on the host.
  const size_t whole = bytes / 16, tail = bytes % 16;
  const Tensor differ = Tensor::zeros({1}, DType::i32, device);
  if (whole > 0)
    compare_kernel<<<grid_for(static_cast<int64_t>(whole)), 256, 0, stream>>>(
        static_cast<const uint4*>(a), static_cast<const uint4*>(b), static_cast<int64_t>(whole),
        ptr<int>(differ));
  check_launch("same_bytes");
  unsigned char ends[2][16] = {};
  for (int i = 0; i < 2; ++i)
    check(cudaMemcpyAsync(ends[i], static_cast<const unsigned char*>(i == 0 ? a : b) + whole * 16, tail,
                          cudaMemcpyDeviceToHost, stream),
          "same_bytes", "cudaMemcpyAsync");
  return differ.item() == 0 && std::memcmp(ends[0], ends[1], tail) == 0;
}

}  // namespace wick::cuda
