#include <cstdlib>
#include <cstring>

#include "backend/memory.h"
#include "wick/error.h"

namespace wick::backend {
namespace {

class CpuMemory final : public MemoryBackend {
 public:
  void* allocate(size_t bytes, int) override {
    // 64-byte alignment suits AVX-512 loads and cache lines.
    const size_t rounded = (bytes + 63) / 64 * 64;
    void* ptr = std::aligned_alloc(64, rounded == 0 ? 64 : rounded);
    if (ptr == nullptr) fail("cpu", "out of host memory allocating {} bytes", bytes);
    return ptr;
  }
  void deallocate(void* ptr, size_t, int) noexcept override { std::free(ptr); }
  void synchronize(int) override {}
  int device_count() override { return 1; }
};

}  // namespace

MemoryBackend& cpu_memory() {
  static CpuMemory memory;
  return memory;
}

MemoryBackend& memory_backend(DeviceType type) {
  return type == DeviceType::cpu ? cpu_memory() : cuda_memory();
}

}  // namespace wick::backend
