// One small kernel that asks the memory system to bring byte ranges into L2 and exits: on Hopper one bulk
// prefetch instruction per 32 KiB (cp.async.bulk.prefetch.L2), elsewhere one prefetch per 128-byte line. It
// is launched as a dependent kernel: it lets the next kernel launch at once, issues its prefetches while the
// previous kernel may still run (they read only the given ranges, which that kernel does not write), and
// waits for the previous kernel before it exits, so the stream's order stays what it was without it.
#include "backend/cuda/prefetch.h"

#include <algorithm>

#include "backend/cuda/common.cuh"
#include "backend/cuda/dependent_launch.cuh"

namespace wick::cuda {
namespace {

constexpr unsigned kChunkBytes = 32u << 10;
constexpr int kBlocks = 4;

struct Ranges {
  const char* begin[kMaxPrefetchTensors];
  unsigned long long bytes[kMaxPrefetchTensors];  // multiples of 16, from 16-byte aligned begins
  int count;
};

__global__ void __launch_bounds__(32) prefetch_l2_kernel(const Ranges r) {
  allow_next_grid();
  const unsigned long long thread = blockIdx.x * 32ull + threadIdx.x, threads = gridDim.x * 32ull;
  for (int i = 0; i < r.count; ++i) {
    const unsigned long long chunks = (r.bytes[i] + kChunkBytes - 1) / kChunkBytes;
    for (unsigned long long c = thread; c < chunks; c += threads) {
      const char* p = r.begin[i] + c * kChunkBytes;
      const unsigned size = static_cast<unsigned>(
          min(static_cast<unsigned long long>(kChunkBytes), r.bytes[i] - c * kChunkBytes));
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
      asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;\n" ::"l"(p), "r"(size) : "memory");
#else
      for (unsigned offset = 0; offset < size; offset += 128)
        asm volatile("prefetch.global.L2 [%0];\n" ::"l"(p + offset));
#endif
    }
  }
  wait_for_previous_grid();
}

}  // namespace

void prefetch_to_l2(const std::vector<Tensor>& tensors) {
  Ranges r{};
  int device = -1;
  for (const Tensor& t : tensors) {
    if (!t.defined() || t.numel() == 0) continue;
    if (r.count == static_cast<int>(kMaxPrefetchTensors))
      raise("prefetch", "at most " + std::to_string(kMaxPrefetchTensors) + " tensors at once");
    device = t.device().index;
    // The extent the view spans in its storage; contiguous tensors are exactly their bytes.
    int64_t last = 0;
    for (int64_t d = 0; d < t.dim(); ++d)
      if (t.size(d) > 0) last += (t.size(d) - 1) * t.stride(d);
    const auto first = reinterpret_cast<uintptr_t>(t.data_ptr());
    const uintptr_t end =
        first + static_cast<uintptr_t>((last + 1) * static_cast<int64_t>(dtype_size(t.dtype())));
    // Whole 16-byte units inside the range (the bulk prefetch's granule); the ragged edges are skipped.
    const uintptr_t begin = (first + 15) / 16 * 16, stop = end / 16 * 16;
    if (stop <= begin) continue;
    r.begin[r.count] = reinterpret_cast<const char*>(begin);
    r.bytes[r.count] = stop - begin;
    ++r.count;
  }
  if (r.count == 0) return;
  DeviceGuard guard(device);
  launch_dependent(prefetch_l2_kernel, dim3(kBlocks), dim3(32), 0, stream_for(device), device, "prefetch", r);
}

}  // namespace wick::cuda
