#pragma once
/// The index of a sharded safetensors folder (`model.safetensors.index.json`), without LibTorch.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace stunt::io {

struct SafetensorsIndex {
  /// tensor name -> shard file name, relative to the index's folder.
  std::map<std::string, std::string> weight_map;
  std::optional<uint64_t> total_size;

  /// Distinct shard names in sorted order.
  std::vector<std::string> shards() const;
};

/// Parses and validates an index. Only `weight_map` is used; a shard name must be a relative
/// path that stays inside the folder and ends in ".safetensors". Throws FormatError naming
/// `source`.
SafetensorsIndex parse_safetensors_index(std::string_view text, const std::string& source);

}  // namespace stunt::io
