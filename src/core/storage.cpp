#include "wick/storage.h"

#include "backend/memory.h"

namespace wick {

Storage::Storage(size_t bytes, Device device) : bytes_(bytes), device_(device) {
  data_ = backend::memory_backend(device.type).allocate(bytes, device.index);
}

Storage::Storage(void* data, size_t bytes, Device device, std::function<void(void*)> release)
    : data_(data), bytes_(bytes), device_(device), release_(std::move(release)) {}

Storage::~Storage() {
  if (release_) {
    release_(data_);
  } else if (data_ != nullptr) {
    backend::memory_backend(device_.type).deallocate(data_, bytes_, device_.index);
  }
}

}  // namespace wick
