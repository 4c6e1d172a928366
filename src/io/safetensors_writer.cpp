// Writing safetensors files atomically: everything goes to a temporary file beside the target, which is
// flushed to disk and renamed over the target only once complete.
#include <algorithm>

#include <nlohmann/json.hpp>

#include "wick/error.h"
#include "wick/io/atomic_file.h"
#include "wick/io/safetensors.h"

namespace wick::io {
namespace fs = std::filesystem;

void save_safetensors(const fs::path& path, const std::map<std::string, Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  const std::string label = path.string();
  if (!path.has_filename()) fail("safetensors", "{}: names a folder, not a file", label);

  // Larger elements first, then by name (the map's order): every tensor then starts aligned to its element
  // size, as the reference library lays files out.
  std::vector<std::pair<const std::string*, const Tensor*>> order;
  for (const auto& [name, tensor] : tensors) {
    if (name == "__metadata__")
      fail("safetensors", "{}: '__metadata__' is reserved and cannot name a tensor", label);
    if (!tensor.defined()) fail("safetensors", "{}: tensor '{}' is undefined", label, name);
    order.emplace_back(&name, &tensor);
  }
  std::stable_sort(order.begin(), order.end(), [](const auto& a, const auto& b) {
    return dtype_size(a.second->dtype()) > dtype_size(b.second->dtype());
  });

  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const auto& [name, tensor] : order) {
    const uint64_t end = offset + tensor->nbytes();
    header[*name] = {{"dtype", safetensors_dtype_name(tensor->dtype())},
                     {"shape", tensor->shape()},
                     {"data_offsets", {offset, end}}};
    offset = end;
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::json::exception& e) {
    fail("safetensors", "{}: cannot encode the header: {}", label, e.what());
  }
  text.append((8 - text.size() % 8) % 8, ' ');

  AtomicFile file(path, "safetensors");
  uint8_t length[8];
  for (size_t i = 0; i < 8; ++i)
    length[i] = static_cast<uint8_t>(static_cast<uint64_t>(text.size()) >> (8 * i));
  file.write(length, sizeof length);
  file.write(text.data(), text.size());
  for (const auto& entry : order) {
    // One host copy at a time, made only where the tensor is not already dense on the host.
    const Tensor host = entry.second->contiguous().to(Device::cpu());
    file.write(host.data_ptr(), host.nbytes());
  }
  file.commit();
}

}  // namespace wick::io
