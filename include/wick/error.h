// The one exception type wick throws for bad input and unusable configurations.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

namespace wick {

// Messages start with the failing op or component in brackets, then say what was expected and what was given:
//   "[softmax] axis 3 is out of range for a tensor of rank 2 (expected -2..1)"
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// Throws Error("[where] message").
[[noreturn]] void raise(std::string_view where, std::string_view message);

}  // namespace wick

// CUDA translation units build messages with std::string: nvcc's front end cannot compile fmt's compile-time
// format checks.
#ifndef __CUDACC__
#include <fmt/format.h>
#include <fmt/ranges.h>

namespace wick {

// Throws Error("[where] message"), message formatted with fmt.
template <typename... Args>
[[noreturn]] void fail(std::string_view where, fmt::format_string<Args...> format, Args&&... args) {
  raise(where, fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace wick
#endif
