// Stands in for the CUDA backend in builds without CUDA: every use says so clearly.
#include <cstring>

#include "backend/memory.h"
#include "wick/error.h"

namespace wick::backend {
namespace {

[[noreturn]] void not_built() {
  fail("cuda",
       "this build of wick has no CUDA support (configure with -DWICK_CUDA=ON on a machine with the CUDA "
       "toolkit); use the cpu device");
}

class CudaUnavailable final : public MemoryBackend {
 public:
  void* allocate(size_t, int) override { not_built(); }
  void deallocate(void*, size_t, int) override {}
  void synchronize(int) override { not_built(); }
  int device_count() override { return 0; }
};

}  // namespace

MemoryBackend& cuda_memory() {
  static CudaUnavailable memory;
  return memory;
}

void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes) {
  if (!dst_device.is_cpu() || !src_device.is_cpu()) not_built();
  if (bytes != 0) std::memmove(dst, src, bytes);
}

}  // namespace wick::backend

namespace wick {
bool cuda_built() {
  return false;
}
}  // namespace wick
