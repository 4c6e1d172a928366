// The one visible selection point for every op: an ordered table of implementations, each with the condition
// it needs (and optionally the measured shapes where it is the faster choice); the first whose condition and
// preference hold runs. WICK_IMPL_<OP>=<name> (e.g. WICK_IMPL_SOFTMAX=cpu) forces a named implementation
// wherever it can run; a forced one that cannot run the call is an error, never a silent fallback.
#pragma once

#include <cctype>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "wick/error.h"

namespace wick::ops {

template <typename Call>
struct Implementation {
  std::string_view name;
  std::string_view needs;             // the condition in words, for error messages
  bool (*applies)(const Call& call);  // the condition
  void (*run)(const Call& call);
  bool (*preferred)(const Call& call) = nullptr;  // unforced, only where this holds too (null: always)
};

inline std::string forced_implementation(std::string_view op) {
  std::string variable = "WICK_IMPL_";
  for (char c : op) variable += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  const char* value = std::getenv(variable.c_str());
  return value != nullptr ? std::string(value) : std::string();
}

template <typename Call>
void dispatch(std::string_view op, const std::vector<Implementation<Call>>& table, const Call& call,
              std::string_view call_description) {
  const std::string forced = forced_implementation(op);
  if (!forced.empty()) {
    for (const auto& impl : table) {
      if (impl.name != forced) continue;
      if (!impl.applies(call))
        fail(op, "forced implementation '{}' cannot run this call ({}): it needs {}", forced,
             call_description, impl.needs);
      impl.run(call);
      return;
    }
    std::string names;
    for (const auto& impl : table) names += (names.empty() ? "" : ", ") + std::string(impl.name);
    fail(op, "unknown implementation '{}' forced by the environment (expected one of: {})", forced, names);
  }
  for (const auto& impl : table) {
    if ((impl.preferred == nullptr || impl.preferred(call)) && impl.applies(call)) {
      impl.run(call);
      return;
    }
  }
  std::string options;
  for (const auto& impl : table)
    options += (options.empty() ? "" : "; ") + std::string(impl.name) + " needs " + std::string(impl.needs);
  fail(op, "no implementation can run this call ({}); available: {}", call_description, options);
}

}  // namespace wick::ops
