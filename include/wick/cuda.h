// CUDA execution model: every op on a CUDA tensor is enqueued on its device's current stream, and the host
// waits only where it reads (to(cpu), item(), synchronize()). In a build without CUDA every function here
// throws a clear wick::Error.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

namespace wick::cuda {

// Bytes held by wick tensors on one device (the allocator is a retained stream-ordered pool).
struct MemoryStats {
  size_t current_bytes = 0;
  size_t peak_bytes = 0;
  size_t allocations = 0;  // live allocations
};
MemoryStats memory_stats(int device = 0);
void reset_peak_memory(int device = 0);

class Stream {
 public:
  explicit Stream(int device = 0);
  ~Stream();
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  int device() const { return device_; }
  void* handle() const { return handle_; }  // a cudaStream_t
  void synchronize() const;

 private:
  int device_;
  void* handle_ = nullptr;
};

// Makes `stream` its device's current stream until the guard goes out of scope.
class StreamGuard {
 public:
  explicit StreamGuard(const Stream& stream);
  ~StreamGuard();
  StreamGuard(const StreamGuard&) = delete;
  StreamGuard& operator=(const StreamGuard&) = delete;

 private:
  int device_;
  void* previous_;
};

// cuDNN's fused attention, one of attention's implementations: empty when this binary has it and cuDNN 9
// loads here (libcudnn.so.9 on the library path, or the file WICK_CUDNN_LIBRARY names), else why not.
std::string cudnn_unavailable_reason();

// The stream ops on `device` are enqueued on now (a cudaStream_t).
void* current_stream(int device = 0);

// GEMM algorithms are chosen once per shape and layout (for large products, the fastest of cuBLASLt's offers
// that give its first offer's bits, unless WICK_GEMM_TUNE=0). This forgets the choices: each shape is chosen
// again at its next call.
void clear_gemm_algorithms();

class Event {
 public:
  explicit Event(int device = 0);
  ~Event();
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  // Records on the device's current stream.
  void record();
  void synchronize() const;
  // Milliseconds from `start` to this event (both recorded and complete).
  float elapsed_ms_since(const Event& start) const;

 private:
  int device_;
  void* handle_ = nullptr;
};

// Captures the ops enqueued on a device's current stream between begin() and end(), then replays them with
// one launch. Tensors used inside must stay alive (and at the same addresses) for as long as the graph is
// replayed.
class Graph {
 public:
  explicit Graph(int device = 0);
  ~Graph();
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;
  void begin();
  void end();
  void replay();

 private:
  int device_;
  std::unique_ptr<Stream> capture_stream_;
  std::unique_ptr<StreamGuard> guard_;
  void* graph_ = nullptr;
  void* exec_ = nullptr;
};

}  // namespace wick::cuda
