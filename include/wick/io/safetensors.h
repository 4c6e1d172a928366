// Reading and writing safetensors files, single or sharded through a model.safetensors.index.json.
//
// A file is an 8-byte little-endian header length N, N bytes of JSON
//   {name: {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ..., "__metadata__": {str: str}}
// and then the data area, which the offsets index. Every header is validated in full before anything in it
// is used; each problem raises one wick::Error that starts with "[safetensors]" and names the file (and the
// tensor, where one is at fault).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "wick/device.h"
#include "wick/dtype.h"
#include "wick/tensor.h"

namespace wick::io {

// One tensor of a safetensors header.
struct TensorInfo {
  std::string format_dtype;  // as the file names it: "F32", "BF16", "I8", "F8_E4M3", ...
  // The wick dtype; empty for a format dtype wick has no type for (I8, U16, F8_E4M3, ...).
  std::optional<DType> dtype;
  Shape shape;
  uint64_t byte_offset = 0;  // from the start of the file
  uint64_t byte_size = 0;
};

// A validated header.
struct SafetensorsHeader {
  uint64_t data_offset = 0;  // where the data area starts in the file: 8 + the header length
  std::map<std::string, TensorInfo, std::less<>> tensors;
  std::map<std::string, std::string> metadata;
};

// Validates the header of a whole safetensors file held in memory (`bytes` is the complete file) and returns
// it; `label` names the file in error messages. Throws only wick::Error.
SafetensorsHeader parse_safetensors_header(std::span<const uint8_t> bytes, std::string_view label);

// The safetensors name of a wick dtype ("F32", "BF16", "BOOL", ...).
std::string_view safetensors_dtype_name(DType dtype);

// One safetensors file, memory-mapped read-only. Copies share the mapping.
class SafetensorsFile {
 public:
  static SafetensorsFile open(const std::filesystem::path& path);

  const std::filesystem::path& path() const { return path_; }
  // Tensor names in sorted order.
  std::vector<std::string> names() const;
  bool contains(std::string_view name) const;
  const TensorInfo& info(std::string_view name) const;
  const std::map<std::string, std::string>& metadata() const { return header_.metadata; }
  // The tensor's bytes inside the mapping, whatever its dtype.
  std::span<const uint8_t> bytes(std::string_view name) const;

  // A cpu tensor over the mapped bytes, without a copy; it keeps the mapping alive after this object is gone.
  // The pages are read-only: writing through the view faults. Throws when the data is not aligned to its
  // element size (load() copies such tensors).
  Tensor view(std::string_view name) const;
  // A copy on `device` in the stored dtype, or converted to `dtype`: on the cpu one conversion straight from
  // the mapping; on a cuda device the stored bytes are copied over and converted there.
  Tensor load(std::string_view name, Device device = Device::cpu()) const;
  Tensor load(std::string_view name, Device device, DType dtype) const;

 private:
  struct Mapping;
  SafetensorsFile(std::filesystem::path path, std::shared_ptr<const Mapping> mapping,
                  SafetensorsHeader header);
  // The wick dtype of `info`; throws when the format dtype has none.
  DType loadable_dtype(std::string_view name, const TensorInfo& info) const;
  // A cpu tensor of `shape` and `dtype` over `size` mapped bytes from `offset`.
  Tensor mapped(uint64_t offset, uint64_t size, const Shape& shape, DType dtype) const;

  std::filesystem::path path_;
  std::shared_ptr<const Mapping> mapping_;
  SafetensorsHeader header_;
};

// The weights of one model: a single safetensors file, or the shards listed by a
// model.safetensors.index.json ({"weight_map": {tensor: shard file}}), seen as one set of tensors.
class SafetensorsCheckpoint {
 public:
  // `path`: a .safetensors file, an index .json, or a folder holding model.safetensors.index.json or
  // model.safetensors (the index first). Every shard is opened and validated, and every tensor of the
  // weight_map must be in its shard.
  static SafetensorsCheckpoint open(const std::filesystem::path& path);

  // The file or the index this checkpoint was opened from.
  const std::filesystem::path& path() const { return path_; }
  std::vector<std::string> names() const;
  bool contains(std::string_view name) const;
  const TensorInfo& info(std::string_view name) const { return file(name).info(name); }
  // The shard holding `name`.
  const SafetensorsFile& file(std::string_view name) const;
  const std::vector<SafetensorsFile>& files() const { return files_; }
  Tensor view(std::string_view name) const { return file(name).view(name); }
  Tensor load(std::string_view name, Device device = Device::cpu()) const {
    return file(name).load(name, device);
  }
  Tensor load(std::string_view name, Device device, DType dtype) const {
    return file(name).load(name, device, dtype);
  }

 private:
  SafetensorsCheckpoint() = default;

  std::filesystem::path path_;
  std::vector<SafetensorsFile> files_;
  std::map<std::string, size_t, std::less<>> file_of_;  // tensor name -> index into files_
};

// Writes `tensors` (any device, any layout) and `metadata` to `path`. The data goes to a temporary file in
// the same folder that is flushed and renamed over `path` only when complete, so on any failure `path` keeps
// its old content and no temporary file remains. The header lists the names sorted and is space-padded to a
// multiple of 8 bytes; the data is laid out as the reference library does (larger elements first, then by
// name), which keeps every tensor aligned to its element size.
void save_safetensors(const std::filesystem::path& path, const std::map<std::string, Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

}  // namespace wick::io
