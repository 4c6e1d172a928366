// Stands in for the CUDA backend in builds without CUDA: every use says so clearly.
#include <cstring>

#include "backend/memory.h"
#include "wick/cuda.h"
#include "wick/error.h"

namespace wick::backend {

[[noreturn]] void not_built() {
  fail("cuda",
       "this build of wick has no CUDA support (configure with -DWICK_CUDA=ON on a machine with the CUDA "
       "toolkit); use the cpu device");
}

namespace {

class CudaUnavailable final : public MemoryBackend {
 public:
  void* allocate(size_t, int) override { not_built(); }
  void deallocate(void*, size_t, int) noexcept override {}
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

namespace wick::cuda {

MemoryStats memory_stats(int) {
  backend::not_built();
}
void reset_peak_memory(int) {
  backend::not_built();
}
std::string cudnn_unavailable_reason() {
  return "this binary has no CUDA backend";
}
void* current_stream(int) {
  backend::not_built();
}
void clear_gemm_algorithms() {
  backend::not_built();
}
Stream::Stream(int device) : device_(device) {
  backend::not_built();
}
Stream::~Stream() = default;
void Stream::synchronize() const {
  backend::not_built();
}
StreamGuard::StreamGuard(const Stream& stream) : device_(stream.device()), previous_(nullptr) {
  backend::not_built();
}
StreamGuard::~StreamGuard() = default;
Event::Event(int device) : device_(device) {
  backend::not_built();
}
Event::~Event() = default;
void Event::record() {
  backend::not_built();
}
void Event::synchronize() const {
  backend::not_built();
}
float Event::elapsed_ms_since(const Event&) const {
  backend::not_built();
}
Graph::Graph(int device) : device_(device) {
  backend::not_built();
}
Graph::~Graph() = default;
void Graph::begin() {
  backend::not_built();
}
void Graph::end() {
  backend::not_built();
}
void Graph::replay() {
  backend::not_built();
}

}  // namespace wick::cuda
