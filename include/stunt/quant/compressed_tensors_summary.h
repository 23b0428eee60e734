#pragma once
/// What a compressed-tensors folder holds, read from config.json and the tensor headers without
/// decompressing anything: the schemes, the ignore list, and per quantized layer its group,
/// format, shape and the bytes it takes (`compress inspect`).

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "stunt/quant/quant_args.h"

namespace stunt::quant {

struct QuantizedLayerSummary {
  std::string name;
  std::string group;
  std::string format;
  int64_t out_features = 0;
  int64_t in_features = 0;
  /// Bytes of every tensor saved for the layer's weight and inputs (packed weight, scales, zero
  /// points, input scales); the bias is not counted.
  uint64_t stored_bytes = 0;

  double bits_per_weight() const;
};

struct QuantizationSummary {
  std::string format;
  std::string version;
  std::vector<std::pair<std::string, QuantScheme>> groups;
  std::vector<std::string> ignore;
  std::vector<QuantizedLayerSummary> layers;
  /// Bytes of every other tensor (embeddings, norms, biases, unquantized layers).
  uint64_t other_bytes = 0;

  nlohmann::ordered_json to_json() const;
  /// The schemes, one row per quantized layer, and the totals.
  std::string to_table() const;
};

/// "int4 symmetric group 64, actorder weight", "int8 token dynamic", "float8 tensor".
std::string describe(const QuantArgs& args);

/// The summary of the compressed-tensors folder `folder`, or nullopt when it is not one.
/// Throws FormatError, naming the file and the tensor, when config.json and the tensors
/// disagree (a quantized layer no group targets, a packed weight without its shape).
std::optional<QuantizationSummary> summarize_compressed(const std::filesystem::path& folder);

}  // namespace stunt::quant
