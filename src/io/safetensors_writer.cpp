// Writing safetensors files atomically: everything goes to a temporary file beside the target, which is
// flushed to disk and renamed over the target only once complete.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
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

// A new file beside `target` that is removed again unless commit() renames it over the target.
class TempFile {
 public:
  explicit TempFile(const fs::path& target) : target_(target) {
    static std::atomic<uint64_t> counter{0};
    const fs::path folder = target.has_parent_path() ? target.parent_path() : fs::path(".");
    // O_EXCL with a fresh name per attempt: a leftover from an earlier crash is never reused.
    for (int attempt = 0; fd_ < 0; ++attempt) {
      temp_ = folder / fmt::format(".{}.tmp-{}-{}", target.filename().string(), getpid(), counter++);
      fd_ = ::open(temp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
      if (fd_ < 0 && (errno != EEXIST || attempt >= 100)) {
        const std::string reason = errno_text();
        fail("safetensors", "{}: cannot create the temporary file {}: {}", target.string(), temp_.string(),
             reason);
      }
    }
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  ~TempFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_) ::unlink(temp_.c_str());
  }

  void write(const void* data, size_t bytes) {
    const auto* next = static_cast<const char*>(data);
    while (bytes > 0) {
      const ssize_t written = ::write(fd_, next, bytes);
      if (written < 0 && errno == EINTR) continue;
      if (written < 0) fail_io("cannot write");
      next += written;
      bytes -= static_cast<size_t>(written);
    }
  }

  void commit() {
    if (fsync(fd_) != 0) fail_io("cannot flush");
    const int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) fail_io("cannot close");
    if (std::rename(temp_.c_str(), target_.c_str()) != 0) {
      const std::string reason = errno_text();
      fail("safetensors", "{}: cannot rename the temporary file {} over it: {}", target_.string(),
           temp_.string(), reason);
    }
    committed_ = true;
    // Make the rename itself durable. Best effort: some file systems cannot sync a folder, and the file is
    // already complete under its name.
    const fs::path folder = target_.has_parent_path() ? target_.parent_path() : fs::path(".");
    const int dir = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir >= 0) {
      fsync(dir);
      ::close(dir);
    }
  }

 private:
  [[noreturn]] void fail_io(std::string_view what) const {
    const std::string reason = errno_text();
    fail("safetensors", "{}: {} the temporary file {}: {}", target_.string(), what, temp_.string(), reason);
  }

  fs::path target_;
  fs::path temp_;
  int fd_ = -1;
  bool committed_ = false;
};

}  // namespace

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

  TempFile file(path);
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
