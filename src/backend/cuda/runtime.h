// Internal access to the CUDA backend's device state.
#pragma once

#include <cuda_runtime.h>

namespace wick::cuda {

// The stream ops on `device` are enqueued on now.
cudaStream_t stream_for(int device);

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
