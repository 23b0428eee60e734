#pragma once
/// A read-only, copy-on-write memory mapping of a whole file.

#include <cstdint>
#include <filesystem>
#include <memory>

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

 private:
  MappedFile() = default;
  uint8_t* data_ = nullptr;
  uint64_t size_ = 0;
};

}  // namespace stunt
