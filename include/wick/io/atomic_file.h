// Files and folders that appear under their real names only when complete: data goes to a temporary file
// beside the target, is flushed, and is renamed over the target; a crash leaves the old content (or nothing).
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

namespace wick::io {

// A new temporary file beside `target`, removed again unless commit() renames it over the target.
class AtomicFile {
 public:
  // `where` prefixes error messages (the format being written).
  explicit AtomicFile(const std::filesystem::path& target, std::string where = "file");
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  ~AtomicFile();

  void write(const void* data, size_t bytes);
  void write(std::string_view text) { write(text.data(), text.size()); }
  // Flushes to disk and renames over the target.
  void commit();

 private:
  [[noreturn]] void fail_io(std::string_view what) const;

  std::filesystem::path target_;
  std::string where_;
  std::filesystem::path temp_;
  int fd_ = -1;
  bool committed_ = false;
};

// Writes `text` to `path` atomically.
void write_file_atomic(const std::filesystem::path& path, std::string_view text);

// A folder filled under a temporary name beside `target` and swapped in by commit(): an old `target` is moved
// aside, the new one renamed into place, and the old one removed. Until commit() the target is untouched; a
// StagedFolder destroyed without commit() removes what it wrote.
class StagedFolder {
 public:
  explicit StagedFolder(const std::filesystem::path& target);
  StagedFolder(const StagedFolder&) = delete;
  StagedFolder& operator=(const StagedFolder&) = delete;
  ~StagedFolder();

  // Where to write the folder's files.
  const std::filesystem::path& path() const { return staging_; }
  void commit();

 private:
  std::filesystem::path target_;
  std::filesystem::path staging_;
  bool committed_ = false;
};

}  // namespace wick::io
