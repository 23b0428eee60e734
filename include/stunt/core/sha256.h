#pragma once
/// SHA-256 (FIPS 180-4), for the content hashes manifests record: the same hex digest as
/// `sha256sum` and Python's hashlib, so a user can check a file by hand.

#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

namespace stunt {

/// Incremental: update() any number of times, then hex_digest() once.
class Sha256 {
 public:
  Sha256();
  void update(const void* data, std::size_t size);
  void update(std::string_view text) { update(text.data(), text.size()); }
  /// The digest as 64 lowercase hex digits. Finishes the hash: update() may not follow.
  std::string hex_digest();

 private:
  void compress(const uint8_t* block);
  std::array<uint32_t, 8> state_;
  std::array<uint8_t, 64> buffer_{};
  std::size_t buffered_ = 0;
  uint64_t total_bytes_ = 0;
  bool finished_ = false;
};

/// The hex digest of a string.
std::string sha256_hex(std::string_view data);
/// The hex digest of a file's bytes, read in blocks; IoError when it cannot be read.
std::string sha256_file(const std::filesystem::path& path);

}  // namespace stunt
