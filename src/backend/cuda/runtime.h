// Internal access to the CUDA backend's device state.
#pragma once

#include <cuda_runtime.h>

namespace wick::cuda {

// The stream ops on `device` are enqueued on now.
cudaStream_t stream_for(int device);

// The GEMM workspace of a stream (gemm.cpp): made before a graph capture starts on that stream, so the
// capture never allocates it (an allocation made inside a capture belongs to the graph), and dropped with the
// stream.
void reserve_gemm_workspace(int device, cudaStream_t stream);
void release_gemm_workspace(int device, cudaStream_t stream);

// The device's multiprocessor count (asked once per device).
int multiprocessors(int device);

// Makes `device` current for the calling thread until the guard goes out of scope.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device);
  ~DeviceGuard();
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = 0;
};

}  // namespace wick::cuda
