#pragma once
/// safetensors files with LibTorch tensors: a memory-mapped reader whose tensors share the
/// mapping where alignment allows, and an atomic writer (single file or sharded folder).

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "stunt/io/safetensors_format.h"

namespace stunt {
class MappedFile;
}

namespace stunt::io {

using NamedTensor = std::pair<std::string, at::Tensor>;

/// A memory-mapped safetensors file. The header is validated when the file is opened; tensor
/// data is touched only when a tensor is requested.
class SafetensorsFile {
 public:
  /// Opens and validates `path`; throws IoError / FormatError naming the file and the cause.
  static std::shared_ptr<SafetensorsFile> open(const std::filesystem::path& path);
  ~SafetensorsFile();

  const SafetensorsHeader& header() const { return header_; }
  const std::filesystem::path& path() const { return path_; }
  bool contains(std::string_view name) const { return header_.find(name) != nullptr; }

  /// The tensor `name` on the CPU. It aliases the read-only mapping (copy-on-write) when its
  /// data is aligned for its element type, and is a copy otherwise. Throws ValueError for an
  /// unknown name and NotImplementedError for dtypes LibTorch lacks (F6_*).
  at::Tensor tensor(std::string_view name) const;
  /// All tensors in file order.
  std::vector<NamedTensor> tensors() const;

 private:
  SafetensorsFile() = default;
  std::filesystem::path path_;
  std::shared_ptr<MappedFile> mapping_;
  uint8_t* data_ = nullptr;
  uint64_t size_ = 0;
  SafetensorsHeader header_;
};

struct SafetensorsWriteOptions {
  std::map<std::string, std::string> metadata;
};

/// Writes `tensors` (any device or layout; made contiguous on the CPU) atomically to `path`,
/// ordered as the reference writer orders them so that the bytes are identical.
void save_safetensors(const std::filesystem::path& path, const std::vector<NamedTensor>& tensors,
                      const SafetensorsWriteOptions& options = {});

struct ShardOptions {
  /// Largest shard in bytes of tensor data; a tensor bigger than this gets a shard of its own.
  uint64_t max_shard_bytes = 5ULL * 1000 * 1000 * 1000;  // transformers' default "5GB"
  /// File name stem: model.safetensors, model-00001-of-00002.safetensors.
  std::string stem = "model";
  std::map<std::string, std::string> metadata = {{"format", "pt"}};
};

/// Writes `tensors` into `folder` as one `<stem>.safetensors`, or, when they exceed
/// max_shard_bytes, as `<stem>-0000i-of-0000n.safetensors` plus `<stem>.safetensors.index.json`,
/// splitting in the given order as transformers does. Returns the files written.
std::vector<std::filesystem::path> save_safetensors_sharded(const std::filesystem::path& folder,
                                                            const std::vector<NamedTensor>& tensors,
                                                            const ShardOptions& options = {});

}  // namespace stunt::io
