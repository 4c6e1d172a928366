// Device state for the CUDA backend: one non-blocking default stream per device (created on first use), the
// current stream, and a stream-ordered allocator over the device's memory pool, retained rather than released
// back to the driver so steady-state allocation costs no system call.
#include <atomic>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <vector>

#include "backend/cuda/check.h"
#include "backend/cuda/runtime.h"
#include "backend/memory.h"
#ifdef WICK_WITH_CUDNN
#include "backend/cudnn/attention.h"
#endif
#include "wick/cuda.h"

namespace wick::cuda {
namespace {

struct DeviceState {
  std::once_flag init;
  cudaStream_t default_stream = nullptr;
  cudaStream_t current = nullptr;
  std::atomic<size_t> current_bytes{0};
  std::atomic<size_t> peak_bytes{0};
  std::atomic<size_t> allocations{0};
};

int visible_devices() {
  static const int count = [] {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
      cudaGetLastError();  // clear the sticky "no device" error
      return 0;
    }
    return n;
  }();
  return count;
}

DeviceState& state(int device) {
  // Never destroyed: tensors still alive at exit free their memory after static destructors have run.
  static auto* states = new std::vector<DeviceState>(static_cast<size_t>(std::max(visible_devices(), 1)));
  if (device < 0 || device >= visible_devices())
    fail("cuda", "device cuda:{} does not exist ({} CUDA device(s) visible)", device, visible_devices());
  DeviceState& s = (*states)[static_cast<size_t>(device)];
  std::call_once(s.init, [&] {
    check(cudaSetDevice(device), "cuda", "cudaSetDevice");
    check(cudaStreamCreateWithFlags(&s.default_stream, cudaStreamNonBlocking), "cuda", "cudaStreamCreate");
    s.current = s.default_stream;
    cudaMemPool_t pool;
    check(cudaDeviceGetDefaultMemPool(&pool, device), "cuda", "cudaDeviceGetDefaultMemPool");
    uint64_t keep_everything = UINT64_MAX;
    check(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep_everything), "cuda",
          "cudaMemPoolSetAttribute");
  });
  return s;
}

class CudaMemory final : public backend::MemoryBackend {
 public:
  void* allocate(size_t bytes, int index) override {
    DeviceState& s = state(index);
    DeviceGuard guard(index);
    void* ptr = nullptr;
    if (bytes > 0) {
      const cudaError_t status = cudaMallocAsync(&ptr, bytes, s.current);
      if (status != cudaSuccess) {
        cudaGetLastError();
        fail("cuda", "out of device memory allocating {} bytes on cuda:{} ({} bytes in use): {}", bytes,
             index, s.current_bytes.load(), cudaGetErrorString(status));
      }
    }
    const size_t now = s.current_bytes += bytes;
    size_t peak = s.peak_bytes.load();
    while (now > peak && !s.peak_bytes.compare_exchange_weak(peak, now)) {
    }
    ++s.allocations;
    return ptr;
  }
  // Runs from destructors, also after the CUDA runtime has shut down at exit: reports nothing, throws
  // nothing.
  void deallocate(void* ptr, size_t bytes, int index) noexcept override {
    DeviceState& s = state(index);
    int previous = 0;
    if (cudaGetDevice(&previous) != cudaSuccess) return;  // runtime already unloaded: the driver frees it all
    if (previous != index) cudaSetDevice(index);
    if (ptr != nullptr) cudaFreeAsync(ptr, s.current);
    if (previous != index) cudaSetDevice(previous);
    s.current_bytes -= bytes;
    --s.allocations;
  }
  void synchronize(int index) override {
    DeviceGuard guard(index);
    check(cudaStreamSynchronize(state(index).current), "synchronize", "cudaStreamSynchronize");
  }
  int device_count() override { return visible_devices(); }
};

}  // namespace

DeviceGuard::DeviceGuard(int device) {
  check(cudaGetDevice(&previous_), "cuda", "cudaGetDevice");
  if (previous_ != device) check(cudaSetDevice(device), "cuda", "cudaSetDevice");
}

DeviceGuard::~DeviceGuard() {
  cudaSetDevice(previous_);
}

cudaStream_t stream_for(int device) {
  return state(device).current;
}

int multiprocessors(int device) {
  static std::atomic<int> cached[64] = {};
  if (device >= 0 && device < 64 && cached[device].load() > 0) return cached[device].load();
  int sms = 0;
  check(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device), "multiprocessors",
        "cudaDeviceGetAttribute");
  if (device >= 0 && device < 64) cached[device].store(sms);
  return sms;
}

std::string cudnn_unavailable_reason() {
#ifdef WICK_WITH_CUDNN
  return cudnn::available() ? std::string() : cudnn::unavailable_reason();
#else
  return "this binary was built without the cuDNN frontend's headers (scripts/fetch-cudnn-frontend.sh)";
#endif
}

void* current_stream(int device) {
  return stream_for(device);
}

MemoryStats memory_stats(int device) {
  DeviceState& s = state(device);
  return {s.current_bytes.load(), s.peak_bytes.load(), s.allocations.load()};
}

void reset_peak_memory(int device) {
  DeviceState& s = state(device);
  s.peak_bytes = s.current_bytes.load();
}

Stream::Stream(int device) : device_(device) {
  state(device);
  DeviceGuard guard(device);
  cudaStream_t stream;
  check(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "stream", "cudaStreamCreate");
  handle_ = stream;
}

Stream::~Stream() {
  cudaStreamDestroy(static_cast<cudaStream_t>(handle_));
}

void Stream::synchronize() const {
  check(cudaStreamSynchronize(static_cast<cudaStream_t>(handle_)), "stream", "cudaStreamSynchronize");
}

StreamGuard::StreamGuard(const Stream& stream) : device_(stream.device()) {
  DeviceState& s = state(device_);
  previous_ = s.current;
  s.current = static_cast<cudaStream_t>(stream.handle());
}

StreamGuard::~StreamGuard() {
  state(device_).current = static_cast<cudaStream_t>(previous_);
}

Event::Event(int device) : device_(device) {
  state(device);
  DeviceGuard guard(device);
  cudaEvent_t event;
  check(cudaEventCreate(&event), "event", "cudaEventCreate");
  handle_ = event;
}

Event::~Event() {
  cudaEventDestroy(static_cast<cudaEvent_t>(handle_));
}

void Event::record() {
  check(cudaEventRecord(static_cast<cudaEvent_t>(handle_), stream_for(device_)), "event", "cudaEventRecord");
}

void Event::synchronize() const {
  check(cudaEventSynchronize(static_cast<cudaEvent_t>(handle_)), "event", "cudaEventSynchronize");
}

float Event::elapsed_ms_since(const Event& start) const {
  float ms = 0;
  check(cudaEventElapsedTime(&ms, static_cast<cudaEvent_t>(start.handle_), static_cast<cudaEvent_t>(handle_)),
        "event", "cudaEventElapsedTime");
  return ms;
}

Graph::Graph(int device) : device_(device) {
  state(device);
}

Graph::~Graph() {
  if (exec_) cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(exec_));
  if (graph_) cudaGraphDestroy(static_cast<cudaGraph_t>(graph_));
  if (capture_stream_) {
    capture_stream_->synchronize();
    release_gemm_workspace(device_, static_cast<cudaStream_t>(capture_stream_->handle()));
  }
}

void Graph::begin() {
  if (guard_) fail("graph", "begin() called twice without end()");
  // Capture needs a stream other than the legacy default; use a fresh one as the current stream, ordered
  // after everything already queued on the previous one.
  cudaStream_t previous = stream_for(device_);
  capture_stream_ = std::make_unique<Stream>(device_);
  reserve_gemm_workspace(device_, static_cast<cudaStream_t>(capture_stream_->handle()));
  cudaEvent_t ready;
  check(cudaEventCreateWithFlags(&ready, cudaEventDisableTiming), "graph", "cudaEventCreate");
  check(cudaEventRecord(ready, previous), "graph", "cudaEventRecord");
  check(cudaStreamWaitEvent(static_cast<cudaStream_t>(capture_stream_->handle()), ready), "graph",
        "cudaStreamWaitEvent");
  cudaEventDestroy(ready);
  guard_ = std::make_unique<StreamGuard>(*capture_stream_);
  check(cudaStreamBeginCapture(static_cast<cudaStream_t>(capture_stream_->handle()),
                               cudaStreamCaptureModeThreadLocal),
        "graph", "cudaStreamBeginCapture");
}

void Graph::end() {
  if (!guard_) fail("graph", "end() called without begin()");
  cudaGraph_t graph;
  check(cudaStreamEndCapture(static_cast<cudaStream_t>(capture_stream_->handle()), &graph), "graph",
        "cudaStreamEndCapture");
  guard_.reset();
  if (exec_) cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(exec_));
  if (graph_) cudaGraphDestroy(static_cast<cudaGraph_t>(graph_));
  graph_ = graph;
  cudaGraphExec_t exec;
  check(cudaGraphInstantiate(&exec, graph, 0), "graph", "cudaGraphInstantiate");
  exec_ = exec;
  capture_stream_->synchronize();
}

void Graph::replay() {
  if (!exec_) fail("graph", "replay() before a capture was completed with end()");
  check(cudaGraphLaunch(static_cast<cudaGraphExec_t>(exec_), stream_for(device_)), "graph",
        "cudaGraphLaunch");
}

}  // namespace wick::cuda

namespace wick {

bool cuda_built() {
  return true;
}

namespace backend {

MemoryBackend& cuda_memory() {
  static cuda::CudaMemory memory;
  return memory;
}

void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes) {
  if (bytes == 0) return;
  if (dst_device.is_cpu() && src_device.is_cpu()) {
    std::memmove(dst, src, bytes);
    return;
  }
  // Order the copy on the stream of the CUDA side (the destination's when both are CUDA devices).
  const int device = dst_device.is_cuda() ? dst_device.index : src_device.index;
  cudaStream_t stream = cuda::stream_for(device);
  cuda::DeviceGuard guard(device);
  if (dst_device.is_cuda() && src_device.is_cuda() && dst_device.index != src_device.index) {
    // Make the source's queued work finish before the peer copy reads it.
    cuda::check(cudaStreamSynchronize(cuda::stream_for(src_device.index)), "copy", "cudaStreamSynchronize");
    cuda::check(cudaMemcpyPeerAsync(dst, dst_device.index, src, src_device.index, bytes, stream), "copy",
                "cudaMemcpyPeerAsync");
    return;
  }
  cuda::check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, stream), "copy", "cudaMemcpyAsync");
  // Host memory is pageable: wait so the host may read (device→host) or free (host→device) its buffer.
  if (dst_device.is_cpu() || src_device.is_cpu())
    cuda::check(cudaStreamSynchronize(stream), "copy", "cudaStreamSynchronize");
}

}  // namespace backend
}  // namespace wick
