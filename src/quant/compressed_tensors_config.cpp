#include "detail/compressed_tensors_config.h"

#include <cctype>
#include <fstream>
#include <sstream>

#include "stunt/core/error.h"
#include "stunt/core/name_pattern.h"

namespace stunt::quant::detail {

namespace fs = std::filesystem;

nlohmann::json read_config(const fs::path& folder) {
  std::ifstream in(folder / "config.json", std::ios::binary);
  if (!in.good()) return nullptr;
  std::stringstream buffer;
  buffer << in.rdbuf();
  try {
    return nlohmann::json::parse(buffer.str());
  } catch (const nlohmann::json::exception&) {
    return nullptr;
  }
}

bool ends_with(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() &&
         text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

CompressedConfig parse_compressed_config(const nlohmann::json& q, const std::string& source) {
  CompressedConfig config;
  STUNT_CHECK_AS(FormatError, q.contains("config_groups") && q["config_groups"].is_object(), source,
                 ": quantization_config has no config_groups");
  for (auto it = q["config_groups"].begin(); it != q["config_groups"].end(); ++it) {
    try {
      config.groups.emplace_back(
          it.key(), QuantScheme::from_json(nlohmann::ordered_json::parse(it.value().dump())));
    } catch (const ValueError& e) {
      throw FormatError(
          str(source, ": quantization_config.config_groups.", it.key(), ".", e.what()));
    }
  }
  if (q.contains("ignore") && q["ignore"].is_array()) {
    for (const auto& i : q["ignore"]) {
      STUNT_CHECK_AS(FormatError, i.is_string(), source,
                     ": quantization_config.ignore holds a non-string entry ", i.dump());
      config.ignore.push_back(i.get<std::string>());
    }
  }
  return config;
}

namespace {

/// compressed-tensors' target rule for a module known only by name: "re:" patterns match from
/// the start, other targets match the exact name, and class names ("Linear") every module that
/// carries quantized tensors (only linear layers do in the formats Stunt reads).
bool targets_module(const std::string& module, const std::string& target) {
  if (name_matches(target, module)) return true;
  if (target.rfind("re:", 0) == 0) return false;
  return target.find('.') == std::string::npos && !target.empty() &&
         std::isupper(static_cast<unsigned char>(target[0]));
}

}  // namespace

const std::pair<std::string, QuantScheme>* find_group(const CompressedConfig& config,
                                                      const std::string& module) {
  for (const auto& i : config.ignore) {
    if (name_matches(i, module)) return nullptr;
  }
  for (const auto& group : config.groups) {
    for (const auto& t : group.second.targets) {
      if (targets_module(module, t)) return &group;
    }
  }
  return nullptr;
}

}  // namespace stunt::quant::detail
