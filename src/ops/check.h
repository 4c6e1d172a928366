// Argument checks shared by the op front-ends. Each failure names the op and the argument.
#pragma once

#include <initializer_list>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "wick/error.h"
#include "wick/tensor.h"

namespace wick::ops {

using NamedTensor = std::pair<std::string_view, const Tensor*>;

inline void check_defined(std::string_view op, std::string_view name, const Tensor& t) {
  if (!t.defined()) fail(op, "argument '{}' is an undefined tensor", name);
}

inline void check_floating(std::string_view op, std::string_view name, const Tensor& t) {
  check_defined(op, name, t);
  if (!is_floating(t.dtype()))
    fail(op, "argument '{}' must be a floating-point tensor (f32, f64, f16, bf16), got {}", name, t.str());
}

inline void check_index_dtype(std::string_view op, std::string_view name, const Tensor& t) {
  check_defined(op, name, t);
  if (t.dtype() != DType::i32 && t.dtype() != DType::i64)
    fail(op, "argument '{}' must hold indices (i32 or i64), got {}", name, t.str());
}

// Checks every index is in [0, limit) or equals `ignored` (when given). Reads the indices to the host, which
// waits for a CUDA device: indices are small and normally come from the host.
inline void check_index_range(std::string_view op, std::string_view name, const Tensor& ids, int64_t limit,
                              std::optional<int64_t> ignored = std::nullopt) {
  const std::vector<int64_t> values = ids.to_vector<int64_t>();
  for (size_t i = 0; i < values.size(); ++i) {
    if (ignored && values[i] == *ignored) continue;
    if (values[i] < 0 || values[i] >= limit)
      fail(op, "{} {} at position {} is out of range (expected 0..{}{})", name, values[i], i, limit - 1,
           ignored ? fmt::format(" or the ignore index {}", *ignored) : "");
  }
}

inline void check_rank(std::string_view op, std::string_view name, const Tensor& t, int64_t rank) {
  if (t.dim() != rank) fail(op, "argument '{}' must have rank {}, got {}", name, rank, t.str());
}

inline void check_shape(std::string_view op, std::string_view name, const Tensor& t, const Shape& shape) {
  if (t.shape() != shape)
    fail(op, "argument '{}' must have shape {}, got {}", name, shape_str(shape), t.str());
}

// All defined tensors in the list share the device of the first; those marked share its dtype too.
inline void check_same_device(std::string_view op, std::initializer_list<NamedTensor> tensors) {
  const NamedTensor* first = nullptr;
  for (const auto& entry : tensors) {
    if (!entry.second->defined()) continue;
    if (first == nullptr) {
      first = &entry;
    } else if (entry.second->device() != first->second->device()) {
      fail(op, "arguments '{}' ({}) and '{}' ({}) are on different devices", first->first,
           first->second->str(), entry.first, entry.second->str());
    }
  }
}

inline void check_same_dtype(std::string_view op, std::initializer_list<NamedTensor> tensors) {
  const NamedTensor* first = nullptr;
  for (const auto& entry : tensors) {
    if (!entry.second->defined()) continue;
    if (first == nullptr) {
      first = &entry;
    } else if (entry.second->dtype() != first->second->dtype()) {
      fail(op, "arguments '{}' ({}) and '{}' ({}) must have the same dtype", first->first,
           first->second->str(), entry.first, entry.second->str());
    }
  }
}

inline std::string describe(std::initializer_list<NamedTensor> tensors) {
  std::string text;
  for (const auto& entry : tensors) {
    if (!entry.second->defined()) continue;
    text += (text.empty() ? "" : ", ") + std::string(entry.first) + "=" + entry.second->str();
  }
  return text;
}

inline bool on_cpu(std::initializer_list<const Tensor*> tensors) {
  for (const Tensor* t : tensors)
    if (t->defined() && !t->device().is_cpu()) return false;
  return true;
}

inline bool on_cuda(std::initializer_list<const Tensor*> tensors) {
  for (const Tensor* t : tensors)
    if (t->defined() && !t->device().is_cuda()) return false;
  return true;
}

}  // namespace wick::ops
