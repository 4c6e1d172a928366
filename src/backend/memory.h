// The per-device memory interface. The CPU backend always exists; the CUDA one is real when CUDA is built and
// a stand-in that reports "CUDA not built" otherwise, so nothing above this layer needs #ifdefs.
#pragma once

#include <cstddef>

#include "wick/device.h"

namespace wick::backend {

class MemoryBackend {
 public:
  virtual ~MemoryBackend() = default;
  virtual void* allocate(size_t bytes, int index) = 0;
  virtual void deallocate(void* ptr, size_t bytes, int index) noexcept = 0;
  virtual void synchronize(int index) = 0;
  virtual int device_count() = 0;
};

MemoryBackend& cpu_memory();
MemoryBackend& cuda_memory();
MemoryBackend& memory_backend(DeviceType type);

// Copies raw bytes between any two devices. Waits for the device when the destination is host memory.
void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes);

}  // namespace wick::backend
