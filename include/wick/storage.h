// A reference-counted block of memory on one device. Tensors are views into a Storage.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>

#include "wick/device.h"

namespace wick {

class Storage {
 public:
  // Allocates `bytes` on `device` through that device's backend.
  Storage(size_t bytes, Device device);
  // Wraps memory owned elsewhere (a memory-mapped file, say); `release` runs when the last view goes.
  Storage(void* data, size_t bytes, Device device, std::function<void(void*)> release);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  Device device() const { return device_; }

 private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
  Device device_;
  std::function<void(void*)> release_;
};

}  // namespace wick
