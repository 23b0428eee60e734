#pragma once
/// A Hugging Face config.json with typed, range-checked reads. Every error names the file, the
/// key, the value found and what was expected.

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

namespace stunt::model {

class HfConfig {
 public:
  /// Reads `folder`/config.json; throws IoError/FormatError naming the file.
  static HfConfig from_folder(const std::filesystem::path& folder);
  HfConfig(nlohmann::json json, std::string source);

  const nlohmann::json& json() const { return json_; }
  nlohmann::json& json() { return json_; }
  const std::string& source() const { return source_; }

  /// The model_type, or "" when absent.
  std::string model_type() const;

  bool has(const std::string& key) const;
  /// An integer >= `min` (default: positive). Without a default, a missing key is an error.
  int64_t integer(const std::string& key, std::optional<int64_t> fallback = std::nullopt,
                  int64_t min = 1) const;
  /// An optional integer: nullopt when absent or null.
  std::optional<int64_t> optional_integer(const std::string& key, int64_t min = 0) const;
  /// A finite number in (min_exclusive, +inf).
  double number(const std::string& key, std::optional<double> fallback = std::nullopt,
                double min_exclusive = 0.0) const;
  bool boolean(const std::string& key, bool fallback) const;
  /// A probability in [0, 1) such as a dropout rate; `fallback` when absent or null.
  double probability(const std::string& key, double fallback) const;
  std::string string(const std::string& key,
                     std::optional<std::string> fallback = std::nullopt) const;

  /// A FormatError "<source>: <key> = <value> <problem>".
  [[noreturn]] void fail(const std::string& key, const std::string& problem) const;

 private:
  const nlohmann::json* find(const std::string& key) const;
  nlohmann::json json_;
  std::string source_;
};

}  // namespace stunt::model
