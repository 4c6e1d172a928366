// Where a tensor's storage lives: the host (cpu) or one CUDA device (cuda:N).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace wick {

enum class DeviceType : uint8_t { cpu, cuda };

struct Device {
  DeviceType type = DeviceType::cpu;
  int index = 0;

  static Device cpu() { return {DeviceType::cpu, 0}; }
  static Device cuda(int index = 0) { return {DeviceType::cuda, index}; }
  bool is_cpu() const { return type == DeviceType::cpu; }
  bool is_cuda() const { return type == DeviceType::cuda; }
  bool operator==(const Device&) const = default;
  std::string str() const;
};

// Parses "cpu", "cuda", "cuda:1"; throws Error for anything else.
Device device_from_name(std::string_view name);

// True when this build of wick includes the CUDA backend.
bool cuda_built();
// Number of CUDA devices visible at run time (0 when CUDA is not built or no GPU is present).
int cuda_device_count();
// Blocks the host until all work queued on the device has finished (no-op on the CPU).
void synchronize(Device device);

}  // namespace wick
