// Shared pieces of the CUDA kernels: element types, float conversion, dtype dispatch, launch helpers.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <atomic>
#include <cstdint>
#include <string_view>

#include "backend/cuda/check.h"
#include "backend/cuda/runtime.h"
#include "wick/tensor.h"

namespace wick::cuda {

template <typename T>
__device__ __forceinline__ float to_float(T v) {
  return static_cast<float>(v);
}
template <>
__device__ __forceinline__ float to_float(__nv_bfloat16 v) {
  return __bfloat162float(v);
}
template <>
__device__ __forceinline__ float to_float(__half v) {
  return __half2float(v);
}

template <typename T>
__device__ __forceinline__ T from_float(float v) {
  return static_cast<T>(v);
}
template <>
__device__ __forceinline__ __nv_bfloat16 from_float(float v) {
  return __float2bfloat16_rn(v);
}
template <>
__device__ __forceinline__ __half from_float(float v) {
  return __float2half_rn(v);
}

// 16-byte vectors of T as floats: the unit of the kernels that read and write whole vectors.
template <typename T>
constexpr int vector_elements = 16 / sizeof(T);

// Loads vector `index` (16 bytes) of `base` as floats.
template <typename T>
__device__ __forceinline__ void load_vector(const T* base, int64_t index, float (&out)[vector_elements<T>]) {
  const uint4 raw = reinterpret_cast<const uint4*>(base)[index];
  const T* e = reinterpret_cast<const T*>(&raw);
#pragma unroll
  for (int i = 0; i < vector_elements<T>; ++i) out[i] = to_float(e[i]);
}

// Stores floats, rounded to T, as vector `index` (16 bytes) of `base`.
template <typename T>
__device__ __forceinline__ void store_vector(T* base, int64_t index, const float (&in)[vector_elements<T>]) {
  uint4 raw;
  T* e = reinterpret_cast<T*>(&raw);
#pragma unroll
  for (int i = 0; i < vector_elements<T>; ++i) e[i] = from_float<T>(in[i]);
  reinterpret_cast<uint4*>(base)[index] = raw;
}

// Compute type per storage type: double for double, float otherwise.
template <typename T>
struct Accumulate {
  using type = float;
};
template <>
struct Accumulate<double> {
  using type = double;
};

template <typename A, typename T>
__device__ __forceinline__ A load_as(const T* p) {
  if constexpr (std::is_same_v<A, double>) {
    return static_cast<double>(*p);
  } else {
    return to_float(*p);
  }
}

template <typename T, typename A>
__device__ __forceinline__ T store_as(A v) {
  if constexpr (std::is_same_v<T, double>) {
    return static_cast<double>(v);
  } else {
    return from_float<T>(static_cast<float>(v));
  }
}

// Calls body(T{}) with the device element type of a float dtype.
template <typename F>
void with_float_type(DType dtype, std::string_view op, F&& body) {
  switch (dtype) {
    case DType::f32:
      return body(float{});
    case DType::f64:
      return body(double{});
    case DType::f16:
      return body(__half{});
    case DType::bf16:
      return body(__nv_bfloat16{});
    default:
      raise(op, "CUDA kernel needs a float dtype, got " + std::string(dtype_name(dtype)));
  }
}

template <typename T>
T* ptr(const Tensor& t) {
  return static_cast<T*>(t.data_ptr());
}

inline cudaStream_t stream_of(const Tensor& t) {
  return stream_for(t.device().index);
}

inline int64_t ceil_div(int64_t a, int64_t b) {
  return (a + b - 1) / b;
}

// Raises a kernel's dynamic shared-memory limit to `bytes`, once per device (`done` holds a bit per device).
template <typename Kernel>
void allow_shared_memory(Kernel kernel, int bytes, int device, std::atomic<uint64_t>& done,
                         std::string_view op) {
  const uint64_t bit = uint64_t(1) << (device & 63);
  if (done.load() & bit) return;
  check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes), op,
        "cudaFuncSetAttribute");
  done.fetch_or(bit);
}

// Block-wide sum of one value per thread (blockDim.x a multiple of 32, at most 1024).
template <typename A>
__device__ A block_sum(A value) {
  __shared__ A partial[32];
  for (int offset = 16; offset > 0; offset /= 2) value += __shfl_xor_sync(0xffffffffu, value, offset);
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  __syncthreads();  // partial[] may still be read by a previous call
  if (lane == 0) partial[warp] = value;
  __syncthreads();
  const int warps = blockDim.x / 32;
  value = lane < warps ? partial[lane] : A(0);
  for (int offset = 16; offset > 0; offset /= 2) value += __shfl_xor_sync(0xffffffffu, value, offset);
  return value;
}

template <typename A>
__device__ A block_max(A value) {
  __shared__ A partial[32];
  for (int offset = 16; offset > 0; offset /= 2)
    value = max(value, __shfl_xor_sync(0xffffffffu, value, offset));
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  __syncthreads();
  if (lane == 0) partial[warp] = value;
  __syncthreads();
  const int warps = blockDim.x / 32;
  value = lane < warps ? partial[lane] : A(-INFINITY);
  for (int offset = 16; offset > 0; offset /= 2)
    value = max(value, __shfl_xor_sync(0xffffffffu, value, offset));
  return value;
}

// Threads per block for a row-wise kernel over rows of `cols` elements.
inline int row_threads(int64_t cols) {
  int threads = 32;
  while (threads < 1024 && threads * 4 < cols) threads *= 2;
  return threads;
}

}  // namespace wick::cuda
