#include "wick/device.h"

#include <charconv>

#include "backend/memory.h"
#include "wick/error.h"

namespace wick {

std::string Device::str() const {
  return is_cpu() ? "cpu" : "cuda:" + std::to_string(index);
}

Device device_from_name(std::string_view name) {
  if (name == "cpu") return Device::cpu();
  if (name == "cuda" || name == "gpu") return Device::cuda(0);
  if (name.substr(0, 5) == "cuda:") {
    int index = -1;
    const auto digits = name.substr(5);
    const auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), index);
    if (error == std::errc() && end == digits.data() + digits.size() && index >= 0)
      return Device::cuda(index);
  }
  fail("device", "unknown device '{}' (expected cpu, cuda or cuda:N)", name);
}

int cuda_device_count() {
  return backend::cuda_memory().device_count();
}

void synchronize(Device device) {
  backend::memory_backend(device.type).synchronize(device.index);
}

}  // namespace wick
