#include "stunt/model/hf_config.h"

#include <cmath>
#include <fstream>
#include <sstream>

#include "stunt/core/error.h"

namespace stunt::model {

HfConfig HfConfig::from_folder(const std::filesystem::path& folder) {
  const std::filesystem::path path = folder / "config.json";
  std::ifstream in(path, std::ios::binary);
  STUNT_CHECK_AS(IoError, in.good(), "cannot read ", path.string(),
                 ": a Hugging Face model folder needs its config.json");
  std::stringstream buffer;
  buffer << in.rdbuf();
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(buffer.str());
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(str(path.string(), ": not valid JSON (", e.what(), ")"));
  }
  STUNT_CHECK_AS(FormatError, json.is_object(), path.string(), ": expected a JSON object");
  return HfConfig(std::move(json), path.string());
}

HfConfig::HfConfig(nlohmann::json json, std::string source)
    : json_(std::move(json)), source_(std::move(source)) {}

std::string HfConfig::model_type() const {
  const nlohmann::json* value = find("model_type");
  return value != nullptr && value->is_string() ? value->get<std::string>() : "";
}

const nlohmann::json* HfConfig::find(const std::string& key) const {
  auto it = json_.find(key);
  if (it == json_.end() || it->is_null()) return nullptr;
  return &*it;
}

bool HfConfig::has(const std::string& key) const { return find(key) != nullptr; }

void HfConfig::fail(const std::string& key, const std::string& problem) const {
  const nlohmann::json* value = find(key);
  throw FormatError(
      str(source_, ": ", key, " = ", value ? value->dump() : "(missing)", " ", problem));
}

int64_t HfConfig::integer(const std::string& key, std::optional<int64_t> fallback,
                          int64_t min) const {
  const nlohmann::json* value = find(key);
  if (value == nullptr) {
    if (fallback) return *fallback;
    fail(key, "is required for this model type; expected an integer");
  }
  if (!value->is_number_integer()) fail(key, "is not an integer");
  const int64_t result = value->get<int64_t>();
  if (result < min) fail(key, str("is out of range; expected an integer >= ", min));
  return result;
}

std::optional<int64_t> HfConfig::optional_integer(const std::string& key, int64_t min) const {
  if (!has(key)) return std::nullopt;
  return integer(key, std::nullopt, min);
}

double HfConfig::number(const std::string& key, std::optional<double> fallback,
                        double min_exclusive) const {
  const nlohmann::json* value = find(key);
  if (value == nullptr) {
    if (fallback) return *fallback;
    fail(key, "is required for this model type; expected a number");
  }
  if (!value->is_number()) fail(key, "is not a number");
  const double result = value->get<double>();
  if (!std::isfinite(result) || !(result > min_exclusive)) {
    fail(key, str("is out of range; expected a finite number > ", min_exclusive));
  }
  return result;
}

double HfConfig::probability(const std::string& key, double fallback) const {
  const nlohmann::json* value = find(key);
  if (value == nullptr || value->is_null()) return fallback;
  if (!value->is_number()) fail(key, "is not a number");
  const double result = value->get<double>();
  if (!(result >= 0.0 && result < 1.0)) fail(key, "is out of range; expected a number in [0, 1)");
  return result;
}

bool HfConfig::boolean(const std::string& key, bool fallback) const {
  const nlohmann::json* value = find(key);
  if (value == nullptr) return fallback;
  if (!value->is_boolean()) fail(key, "is not true or false");
  return value->get<bool>();
}

std::string HfConfig::string(const std::string& key, std::optional<std::string> fallback) const {
  const nlohmann::json* value = find(key);
  if (value == nullptr) {
    if (fallback) return *fallback;
    fail(key, "is required for this model type; expected a string");
  }
  if (!value->is_string()) fail(key, "is not a string");
  return value->get<std::string>();
}

}  // namespace stunt::model
