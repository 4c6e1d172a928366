#include "backend/cuda/dependent_launch.cuh"

#include <atomic>
#include <cstdlib>
#include <cstring>

namespace wick::cuda {

// WICK_DEPENDENT_LAUNCH=0 turns the overlap off, for measurements.
bool dependent_launch_supported(int device) {
  static std::atomic<int> cached[64] = {};  // 0 unknown, 1 no, 2 yes
  if (device < 0 || device >= 64) return false;
  int known = cached[device].load();
  if (known == 0) {
    int major = 0;
    check(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device), "launch",
          "cudaDeviceGetAttribute");
    const char* setting = std::getenv("WICK_DEPENDENT_LAUNCH");
    const bool off = setting != nullptr && std::strcmp(setting, "0") == 0;
    known = major >= 9 && !off ? 2 : 1;
    cached[device].store(known);
  }
  return known == 2;
}

}  // namespace wick::cuda
