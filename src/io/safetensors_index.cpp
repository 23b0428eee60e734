#include "stunt/io/safetensors_index.h"

#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "stunt/core/error.h"

namespace stunt::io {
namespace {

void check_shard_name(const std::string& tensor, const std::string& shard,
                      const std::string& source) {
  const std::string where = str(source, ": weight_map['", tensor, "'] = '", shard, "'");
  STUNT_CHECK_AS(FormatError, !shard.empty(), where, ": empty shard name");
  STUNT_CHECK_AS(FormatError, shard.find('\0') == std::string::npos, where,
                 ": shard name contains a NUL byte");
  const std::filesystem::path path(shard);
  STUNT_CHECK_AS(FormatError, !path.is_absolute(), where,
                 ": shard names must be relative to the index's folder");
  for (const auto& part : path) {
    STUNT_CHECK_AS(FormatError, part != "..", where,
                   ": shard name leaves the index's folder; refusing to read outside it");
  }
  constexpr std::string_view kSuffix = ".safetensors";
  STUNT_CHECK_AS(FormatError,
                 shard.size() > kSuffix.size() &&
                     shard.compare(shard.size() - kSuffix.size(), kSuffix.size(), kSuffix) == 0,
                 where, ": expected a '.safetensors' shard file");
}

}  // namespace

std::vector<std::string> SafetensorsIndex::shards() const {
  std::set<std::string> unique;
  for (const auto& [tensor, shard] : weight_map) unique.insert(shard);
  return {unique.begin(), unique.end()};
}

SafetensorsIndex parse_safetensors_index(std::string_view text, const std::string& source) {
  nlohmann::json root;
  try {
    root = nlohmann::json::parse(text.begin(), text.end());
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(str(source, ": not valid JSON (", printable(e.what()), ")"));
  }
  STUNT_CHECK_AS(FormatError, root.is_object(), source,
                 ": the index must be a JSON object with "
                 "'weight_map'");
  STUNT_CHECK_AS(FormatError, root.contains("weight_map"), source,
                 ": missing 'weight_map' (tensor name -> shard file)");
  const auto& map = root["weight_map"];
  STUNT_CHECK_AS(FormatError, map.is_object(), source,
                 ": 'weight_map' must be an object of tensor name -> shard file, found ",
                 map.type_name());
  STUNT_CHECK_AS(FormatError, !map.empty(), source, ": 'weight_map' is empty");
  SafetensorsIndex index;
  for (auto it = map.begin(); it != map.end(); ++it) {
    STUNT_CHECK_AS(FormatError, it.value().is_string(), source, ": weight_map['", it.key(),
                   "'] must be a file name string, found ", it.value().type_name());
    const std::string shard = it.value().get<std::string>();
    check_shard_name(it.key(), shard, source);
    index.weight_map[it.key()] = shard;
  }
  if (root.contains("metadata") && root["metadata"].is_object() &&
      root["metadata"].contains("total_size")) {
    const auto& total = root["metadata"]["total_size"];
    // total_size is informational (some writers store it as a float); only use it when sane.
    if (total.is_number_unsigned()) index.total_size = total.get<uint64_t>();
  }
  return index;
}

}  // namespace stunt::io
