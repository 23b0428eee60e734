#pragma once
/// Quantization schemes as data, with the vocabulary and rules of compressed-tensors.

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace stunt::quant {

enum class QuantType { Int, Float };
enum class QuantStrategy { Tensor, Channel, Group, Block, Token, TensorGroup, AttnHead };
/// GPTQ's column order: by activation magnitude. 'weight' and 'static' mean the same and are kept
/// as written. compressed-tensors 0.19 removed 'group' (act-order with per-column group indices).
enum class ActOrder { Weight, Static };
/// Dynamic quantization: static (calibrated), dynamic per call, or "local" (tensor_group only).
enum class DynamicKind { Static, Dynamic, Local };

const char* to_string(QuantType type);
const char* to_string(QuantStrategy strategy);
const char* to_string(ActOrder order);

/// One tensor's quantization (weights, input or output activations). Mirrors
/// compressed-tensors' QuantizationArgs.
struct QuantArgs {
  int num_bits = 8;
  QuantType type = QuantType::Int;
  bool symmetric = true;
  std::optional<int64_t> group_size;
  /// Inferred when absent: no group_size -> tensor, > 0 -> group, -1 -> channel.
  std::optional<QuantStrategy> strategy;
  std::optional<std::vector<int64_t>> block_structure;
  DynamicKind dynamic = DynamicKind::Static;
  std::optional<ActOrder> actorder;
  std::optional<std::string> observer;
  nlohmann::ordered_json observer_kwargs = nlohmann::ordered_json::object();
  std::optional<std::string> scale_dtype;
  std::optional<std::string> zp_dtype;

  /// Reads the compressed-tensors JSON form (unknown keys are errors), infers the strategy,
  /// then validate(). Throws ValueError naming the key and the fix.
  static QuantArgs from_json(const nlohmann::ordered_json& j);
  /// The compressed-tensors JSON form (what config.json's quantization_config holds).
  nlohmann::ordered_json to_json() const;
  /// compressed-tensors' rules: token needs dynamic, group needs group_size > 0, ...
  void validate() const;
  QuantStrategy resolved_strategy() const;
};

/// Which tensors of which layers are quantized how. Mirrors QuantizationScheme.
struct QuantScheme {
  std::vector<std::string> targets;
  std::optional<QuantArgs> weights;
  std::optional<QuantArgs> input_activations;
  std::optional<QuantArgs> output_activations;
  std::optional<std::string> format;

  static QuantScheme from_json(const nlohmann::ordered_json& j);
  nlohmann::ordered_json to_json() const;
  void validate() const;
};

/// A named preset ("W4A16", "W8A8", "FP8", ...).
struct SchemePreset {
  std::string name;
  std::string summary;
  QuantScheme scheme;
};

/// Every preset, in the order `compress list schemes` prints them.
const std::vector<SchemePreset>& scheme_presets();
/// The preset called `name` (case-insensitive, as compressed-tensors), or nullptr.
const SchemePreset* find_scheme_preset(const std::string& name);
/// "W4A16, W4A16_ASYM, ..." for error messages.
std::string scheme_preset_names();

/// compressed-tensors checkpoint formats (`format` of a scheme or quantization_config).
const std::vector<std::string>& compression_formats();

}  // namespace stunt::quant
