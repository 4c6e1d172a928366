// libFuzzer entry for the safetensors header validation: any input bytes, taken as a whole file, must either
// parse or raise wick::Error. Any other exception, crash or sanitizer report is a finding.
#include <cstddef>
#include <cstdint>

#include "wick/error.h"
#include "wick/io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const wick::io::SafetensorsHeader header = wick::io::parse_safetensors_header({data, size}, "fuzz input");
    // Whatever validated must describe ranges inside the input.
    for (const auto& [name, info] : header.tensors)
      if (info.byte_offset > size || info.byte_size > size - info.byte_offset) __builtin_trap();
  } catch (const wick::Error&) {
  }
  return 0;
}
