// Programmatic dependent launch (Hopper and later): a kernel launched with launch_dependent() may start while
// the kernel before it on the stream is still running, so it can issue the loads that do not depend on that
// kernel (weights) early and hide the gap between the two. Such a kernel must call wait_for_previous_grid()
// before it reads or writes any memory the previous kernel touches; it calls allow_next_grid() once its own
// blocks have started, so that the next dependent kernel may launch. On older devices both calls do nothing
// and the launch is an ordinary one.
#pragma once

#include <cuda_runtime.h>

#include <string_view>
#include <utility>

#include "backend/cuda/check.h"

namespace wick::cuda {

__device__ __forceinline__ void wait_for_previous_grid() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
}

__device__ __forceinline__ void allow_next_grid() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
}

// Whether `device` can overlap dependent launches (compute capability 9.0 or later).
bool dependent_launch_supported(int device);

template <typename... Params, typename... Args>
void launch_dependent(void (*kernel)(Params...), dim3 grid, dim3 block, size_t shared_bytes,
                      cudaStream_t stream, int device, std::string_view op, Args&&... args) {
  cudaLaunchConfig_t config{};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = shared_bytes;
  config.stream = stream;
  cudaLaunchAttribute attribute{};
  attribute.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attribute.val.programmaticStreamSerializationAllowed = 1;
  if (dependent_launch_supported(device)) {
    config.attrs = &attribute;
    config.numAttrs = 1;
  }
  check(cudaLaunchKernelEx(&config, kernel, std::forward<Args>(args)...), op, "cudaLaunchKernelEx");
}

}  // namespace wick::cuda
