// Memory-mapped safetensors files and sharded checkpoints.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <iterator>
#include <system_error>

#include <nlohmann/json.hpp>

#include "wick/error.h"
#include "wick/io/safetensors.h"

namespace wick::io {
namespace fs = std::filesystem;

namespace {

std::string errno_text() {
  return std::system_category().message(errno);
}

// Closes a file descriptor when it goes out of scope; the mapping stays valid after.
class Descriptor {
 public:
  explicit Descriptor(int fd) : fd_(fd) {}
  Descriptor(const Descriptor&) = delete;
  Descriptor& operator=(const Descriptor&) = delete;
  ~Descriptor() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

}  // namespace

struct SafetensorsFile::Mapping {
  const uint8_t* data = nullptr;
  size_t size = 0;

  Mapping() = default;
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  ~Mapping() {
    if (size > 0) munmap(const_cast<uint8_t*>(data), size);
  }
};

SafetensorsFile::SafetensorsFile(fs::path path, std::shared_ptr<const Mapping> mapping,
                                 SafetensorsHeader header)
    : path_(std::move(path)), mapping_(std::move(mapping)), header_(std::move(header)) {}

SafetensorsFile SafetensorsFile::open(const fs::path& path) {
  const std::string label = path.string();
  // O_NONBLOCK so that a FIFO does not wait for a writer; it is refused as not a regular file below.
  const Descriptor fd(::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
  if (fd.get() < 0) fail("safetensors", "{}: cannot open: {}", label, errno_text());
  struct stat st {};
  if (fstat(fd.get(), &st) != 0) fail("safetensors", "{}: cannot stat: {}", label, errno_text());
  if (!S_ISREG(st.st_mode)) fail("safetensors", "{}: not a regular file", label);

  auto mapping = std::make_shared<Mapping>();
  if (st.st_size > 0) {  // mmap refuses an empty length; the header check reports the empty file
    void* data = mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_PRIVATE, fd.get(), 0);
    if (data == MAP_FAILED)
      fail("safetensors", "{}: cannot map {} bytes: {}", label, st.st_size, errno_text());
    mapping->data = static_cast<const uint8_t*>(data);
    mapping->size = static_cast<size_t>(st.st_size);
  }
  SafetensorsHeader header = parse_safetensors_header({mapping->data, mapping->size}, label);
  return SafetensorsFile(path, std::move(mapping), std::move(header));
}

std::vector<std::string> SafetensorsFile::names() const {
  std::vector<std::string> names;
  names.reserve(header_.tensors.size());
  for (const auto& entry : header_.tensors) names.push_back(entry.first);
  return names;
}

bool SafetensorsFile::contains(std::string_view name) const {
  return header_.tensors.find(name) != header_.tensors.end();
}

const TensorInfo& SafetensorsFile::info(std::string_view name) const {
  const auto it = header_.tensors.find(name);
  if (it == header_.tensors.end())
    fail("safetensors", "{}: no tensor '{}' (the file holds {} tensors)", path_.string(), name,
         header_.tensors.size());
  return it->second;
}

std::span<const uint8_t> SafetensorsFile::bytes(std::string_view name) const {
  const TensorInfo& tensor = info(name);
  return {mapping_->data + tensor.byte_offset, tensor.byte_size};
}

DType SafetensorsFile::loadable_dtype(std::string_view name, const TensorInfo& info) const {
  if (!info.dtype)
    fail(
        "safetensors",
        "{}: tensor '{}': dtype {} has no wick dtype, so it cannot be loaded as a tensor (info() and bytes() "
        "still read it)",
        path_.string(), name, info.format_dtype);
  return *info.dtype;
}

Tensor SafetensorsFile::mapped(uint64_t offset, uint64_t size, const Shape& shape, DType dtype) const {
  auto* data = const_cast<uint8_t*>(mapping_->data + offset);
  // The storage's release holds the mapping, so the view keeps the file mapped after this object is gone.
  auto storage = std::make_shared<Storage>(data, size, Device::cpu(), [mapping = mapping_](void*) {});
  return Tensor(std::move(storage), shape, contiguous_strides(shape), 0, dtype);
}

Tensor SafetensorsFile::view(std::string_view name) const {
  const TensorInfo& tensor = info(name);
  const DType dtype = loadable_dtype(name, tensor);
  // The mapping starts on a page boundary, so the file offset decides the alignment.
  if (tensor.byte_offset % dtype_size(dtype) != 0)
    fail("safetensors",
         "{}: tensor '{}': its {} data starts at file offset {}, not a multiple of its {}-byte element size, "
         "so "
         "it cannot be viewed in place (load() copies it)",
         path_.string(), name, tensor.format_dtype, tensor.byte_offset, dtype_size(dtype));
  return mapped(tensor.byte_offset, tensor.byte_size, tensor.shape, dtype);
}

Tensor SafetensorsFile::load(std::string_view name, Device device) const {
  return load(name, device, loadable_dtype(name, info(name)));
}

Tensor SafetensorsFile::load(std::string_view name, Device device, DType dtype) const {
  const TensorInfo& tensor = info(name);
  const DType stored = loadable_dtype(name, tensor);
  if (device.is_cpu() && tensor.byte_offset % dtype_size(stored) == 0) {
    Tensor out = Tensor::empty(tensor.shape, dtype, device);
    out.copy_(view(name));
    return out;
  }
  // Raw bytes need no alignment: move them to the device as they are, then convert them where they landed.
  const auto size = static_cast<int64_t>(tensor.byte_size);
  Tensor raw = Tensor::empty({size}, DType::u8, device);
  raw.copy_(mapped(tensor.byte_offset, tensor.byte_size, {size}, DType::u8));
  return Tensor(raw.storage(), tensor.shape, contiguous_strides(tensor.shape), 0, stored).to(dtype);
}

// ---- sharded checkpoints ----

namespace {

constexpr std::string_view kIndexName = "model.safetensors.index.json";
constexpr std::string_view kSingleName = "model.safetensors";

template <typename... Args>
[[noreturn]] void index_error(const fs::path& index, fmt::format_string<Args...> format, Args&&... args) {
  fail("safetensors", "{}: {}", index.string(), fmt::format(format, std::forward<Args>(args)...));
}

// The weight_map of an index: tensor name -> shard file name, relative to the index's folder.
std::map<std::string, std::string> read_weight_map(const fs::path& index) {
  std::ifstream in(index, std::ios::binary);
  if (!in) index_error(index, "cannot open: {}", errno_text());
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) index_error(index, "cannot read: {}", errno_text());
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    index_error(index, "not valid JSON: {}", e.what());
  }
  const auto map = json.is_object() ? json.find("weight_map") : json.end();
  if (map == json.end() || !map->is_object())
    index_error(index, "needs a \"weight_map\" object mapping tensor names to shard files");
  std::map<std::string, std::string> weight_map;
  for (const auto& [tensor, shard] : map->items()) {
    if (!shard.is_string() || shard.get_ref<const std::string&>().empty())
      index_error(index, "weight_map entry '{}' must name a shard file, got {}", tensor, shard.dump());
    const fs::path shard_path(shard.get<std::string>());
    const bool escapes =
        std::any_of(shard_path.begin(), shard_path.end(), [](const fs::path& p) { return p == ".."; });
    if (shard_path.is_absolute() || escapes)
      index_error(index, "tensor '{}' maps to shard '{}', which is outside the index's folder", tensor,
                  shard_path.string());
    weight_map.emplace(tensor, shard.get<std::string>());
  }
  return weight_map;
}

}  // namespace

SafetensorsCheckpoint SafetensorsCheckpoint::open(const fs::path& path) {
  fs::path file = path;
  if (fs::is_directory(path)) {
    if (fs::exists(path / kIndexName)) {
      file = path / kIndexName;
    } else if (fs::exists(path / kSingleName)) {
      file = path / kSingleName;
    } else {
      fail("safetensors", "{}: the folder holds neither {} nor {}", path.string(), kIndexName, kSingleName);
    }
  }
  SafetensorsCheckpoint checkpoint;
  checkpoint.path_ = file;
  if (file.extension() != ".json") {
    checkpoint.files_.push_back(SafetensorsFile::open(file));
    for (const std::string& name : checkpoint.files_[0].names()) checkpoint.file_of_.emplace(name, 0);
    return checkpoint;
  }

  const std::map<std::string, std::string> weight_map = read_weight_map(file);
  std::map<std::string, size_t> shard_index;  // shard file name -> index into files_
  for (const auto& [tensor, shard] : weight_map) {
    auto [it, added] = shard_index.emplace(shard, checkpoint.files_.size());
    if (added) {
      const fs::path shard_path = file.parent_path() / shard;
      if (!fs::is_regular_file(shard_path))
        index_error(file, "shard '{}' (holding tensor '{}') does not exist: no file {}", shard, tensor,
                    shard_path.string());
      checkpoint.files_.push_back(SafetensorsFile::open(shard_path));
    }
    if (!checkpoint.files_[it->second].contains(tensor))
      index_error(file, "tensor '{}' is mapped to shard '{}', which has no such tensor", tensor, shard);
    checkpoint.file_of_.emplace(tensor, it->second);
  }
  return checkpoint;
}

std::vector<std::string> SafetensorsCheckpoint::names() const {
  std::vector<std::string> names;
  names.reserve(file_of_.size());
  for (const auto& entry : file_of_) names.push_back(entry.first);
  return names;
}

bool SafetensorsCheckpoint::contains(std::string_view name) const {
  return file_of_.find(name) != file_of_.end();
}

const SafetensorsFile& SafetensorsCheckpoint::file(std::string_view name) const {
  const auto it = file_of_.find(name);
  if (it == file_of_.end())
    fail("safetensors", "{}: no tensor '{}' (the checkpoint holds {} tensors)", path_.string(), name,
         file_of_.size());
  return files_[it->second];
}

}  // namespace wick::io
