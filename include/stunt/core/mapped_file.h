#pragma once
/// A read-only, copy-on-write memory mapping of a whole file.

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>

namespace stunt {

class MappedFile {
 public:
  /// Maps `path`; throws IoError naming the file when it cannot be opened or mapped.
  static std::shared_ptr<MappedFile> open(const std::filesystem::path& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  /// Pages are mapped copy-on-write: writing through this pointer never changes the file.
  uint8_t* data() const { return data_; }
  uint64_t size() const { return size_; }

  /// One more user (a tensor aliasing the mapping) of the bytes that start at `offset`.
  void acquire(uint64_t offset);
  /// One user of [offset, offset + length) is gone. When it was the last, the whole pages
  /// inside the range go back to the kernel: weights an algorithm has replaced stop counting in
  /// the process's memory, and a later read of the range sees the file's bytes again.
  void release(uint64_t offset, uint64_t length);

 private:
  MappedFile() = default;
  uint8_t* data_ = nullptr;
  uint64_t size_ = 0;
  std::mutex mutex_;
  std::map<uint64_t, int> users_;
};

}  // namespace stunt
