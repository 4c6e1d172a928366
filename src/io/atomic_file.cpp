#include "wick/io/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <system_error>

#include <fmt/format.h>

#include "wick/error.h"

namespace wick::io {
namespace fs = std::filesystem;
namespace {

std::string errno_text() {
  return std::system_category().message(errno);
}

std::atomic<uint64_t> temp_counter{0};

void sync_folder(const fs::path& path) {
  // Best effort: some file systems cannot sync a folder, and the data is already complete under its name.
  const fs::path folder = path.has_parent_path() ? path.parent_path() : fs::path(".");
  const int dir = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir >= 0) {
    fsync(dir);
    ::close(dir);
  }
}

}  // namespace

AtomicFile::AtomicFile(const fs::path& target, std::string where)
    : target_(target), where_(std::move(where)) {
  const fs::path folder = target.has_parent_path() ? target.parent_path() : fs::path(".");
  // O_EXCL with a fresh name per attempt: a leftover from an earlier crash is never reused.
  for (int attempt = 0; fd_ < 0; ++attempt) {
    temp_ = folder / fmt::format(".{}.tmp-{}-{}", target.filename().string(), getpid(), temp_counter++);
    fd_ = ::open(temp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd_ < 0 && (errno != EEXIST || attempt >= 100)) {
      const std::string reason = errno_text();
      fail(where_, "{}: cannot create the temporary file {}: {}", target.string(), temp_.string(), reason);
    }
  }
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(temp_.c_str());
}

void AtomicFile::write(const void* data, size_t bytes) {
  const auto* next = static_cast<const char*>(data);
  while (bytes > 0) {
    const ssize_t written = ::write(fd_, next, bytes);
    if (written < 0 && errno == EINTR) continue;
    if (written < 0) fail_io("cannot write");
    next += written;
    bytes -= static_cast<size_t>(written);
  }
}

void AtomicFile::commit() {
  if (fsync(fd_) != 0) fail_io("cannot flush");
  const int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) fail_io("cannot close");
  if (std::rename(temp_.c_str(), target_.c_str()) != 0) {
    const std::string reason = errno_text();
    fail(where_, "{}: cannot rename the temporary file {} over it: {}", target_.string(), temp_.string(),
         reason);
  }
  committed_ = true;
  sync_folder(target_);
}

void AtomicFile::fail_io(std::string_view what) const {
  const std::string reason = errno_text();
  fail(where_, "{}: {} the temporary file {}: {}", target_.string(), what, temp_.string(), reason);
}

void write_file_atomic(const fs::path& path, std::string_view text) {
  AtomicFile file(path);
  file.write(text);
  file.commit();
}

StagedFolder::StagedFolder(const fs::path& target) : target_(target) {
  if (!target.has_filename()) fail("file", "{}: a folder to write needs a name", target.string());
  const fs::path parent = target.has_parent_path() ? target.parent_path() : fs::path(".");
  std::error_code error;
  fs::create_directories(parent, error);
  if (error)
    fail("file", "{}: cannot create the folder {}: {}", target.string(), parent.string(), error.message());
  for (int attempt = 0;; ++attempt) {
    staging_ = parent / fmt::format(".{}.tmp-{}-{}", target.filename().string(), getpid(), temp_counter++);
    if (fs::create_directory(staging_, error)) break;
    if (attempt >= 100 || (error && error != std::errc::file_exists))
      fail("file", "{}: cannot create the staging folder {}: {}", target.string(), staging_.string(),
           error ? error.message() : "it exists");
  }
}

StagedFolder::~StagedFolder() {
  if (committed_) return;
  std::error_code ignored;
  fs::remove_all(staging_, ignored);
}

void StagedFolder::commit() {
  std::error_code error;
  fs::path old;
  if (fs::exists(target_)) {
    old = target_.parent_path() /
          fmt::format(".{}.old-{}-{}", target_.filename().string(), getpid(), temp_counter++);
    fs::rename(target_, old, error);
    if (error) fail("file", "{}: cannot move the old folder aside: {}", target_.string(), error.message());
  }
  fs::rename(staging_, target_, error);
  if (error) {
    std::error_code ignored;
    if (!old.empty()) fs::rename(old, target_, ignored);
    fail("file", "{}: cannot rename the staging folder {} into place: {}", target_.string(),
         staging_.string(), error.message());
  }
  committed_ = true;
  sync_folder(target_);
  if (!old.empty()) fs::remove_all(old, error);
}

}  // namespace wick::io
