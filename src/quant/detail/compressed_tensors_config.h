#pragma once
// Reading config.json's quantization_config (compressed-tensors): the config groups, the ignore
// list, and which group a module saved under a name belongs to. Shared by the loader and the
// `compress inspect` summary.

#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "stunt/quant/quant_args.h"

namespace stunt::quant::detail {

/// config.json of `folder` parsed, or null when it is missing or not JSON (the model loader
/// reports a broken config.json with its details).
nlohmann::json read_config(const std::filesystem::path& folder);

bool ends_with(const std::string& text, const std::string& suffix);

struct CompressedConfig {
  std::vector<std::pair<std::string, QuantScheme>> groups;
  std::vector<std::string> ignore;
};

/// The config groups and ignore list of `quantization_config`; FormatError naming `source` and
/// the group when they do not parse.
CompressedConfig parse_compressed_config(const nlohmann::json& quantization_config,
                                         const std::string& source);

/// The group that quantizes `module` (known by name only), or nullptr when the ignore list names
/// it or no group targets it.
const std::pair<std::string, QuantScheme>* find_group(const CompressedConfig& config,
                                                      const std::string& module);

}  // namespace stunt::quant::detail
