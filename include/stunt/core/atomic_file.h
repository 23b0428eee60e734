#pragma once
/// Atomic outputs: everything is written under a temporary name beside its target, flushed
/// to disk, then renamed into place, so an interrupted command never leaves a half-written
/// file or folder where a complete one was expected.

#include <cstddef>
#include <cstdio>
#include <filesystem>
#include <string_view>
#include <vector>

namespace stunt {

/// One file written under a temporary name; commit() fsyncs and renames it onto the target.
/// Without commit() the destructor removes the temporary and the target is untouched.
class AtomicFile {
 public:
  explicit AtomicFile(std::filesystem::path target);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  /// Appends `size` bytes; throws IoError on a short write (disk full, ...).
  void write(const void* data, std::size_t size);
  void write(std::string_view text) { write(text.data(), text.size()); }
  /// Flushes, fsyncs, renames onto the target and fsyncs the folder.
  void commit();

  const std::filesystem::path& target() const { return target_; }
  const std::filesystem::path& temp_path() const { return temp_; }

 private:
  std::filesystem::path target_;
  std::filesystem::path temp_;
  std::FILE* file_ = nullptr;
  bool committed_ = false;
};

/// Writes a whole file atomically.
void write_file_atomic(const std::filesystem::path& target, std::string_view content);

struct OutputFolderOptions {
  /// Replace an existing non-empty folder; otherwise its presence is an error raised at once.
  bool overwrite = false;
};

/// An output folder built under a temporary name beside the target; commit() renames it into
/// place (an existing folder is replaced only with overwrite). Without commit() the destructor
/// removes the staging folder and the target is untouched.
class AtomicDirectory {
 public:
  AtomicDirectory(std::filesystem::path target, OutputFolderOptions options = {});
  ~AtomicDirectory();
  AtomicDirectory(const AtomicDirectory&) = delete;
  AtomicDirectory& operator=(const AtomicDirectory&) = delete;

  /// The folder to write into until commit().
  const std::filesystem::path& staging() const { return staging_; }
  const std::filesystem::path& target() const { return target_; }
  void commit();

 private:
  std::filesystem::path target_;
  std::filesystem::path staging_;
  OutputFolderOptions options_;
  /// Parent folders this object created, deepest first.
  std::vector<std::filesystem::path> created_parents_;
  bool committed_ = false;
};

/// Fsyncs a folder so that a rename inside it survives a crash.
void fsync_directory(const std::filesystem::path& folder);

}  // namespace stunt
