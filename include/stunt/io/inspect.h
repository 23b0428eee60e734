#pragma once
/// `compress inspect`: per-tensor dtype, shape, bytes and sparsity of any checkpoint.

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "stunt/io/checkpoint.h"

namespace stunt::io {

struct TensorReport {
  TensorEntry entry;
  /// Zero elements; absent when not computed or not computable (F6 dtypes).
  std::optional<uint64_t> zeros;
  /// "2:4" or "4:8" when a 2-D floating tensor follows that N:M pattern (n of every m zero
  /// along its rows), else empty; only computed with the zeros.
  std::string pattern;
};

struct InspectReport {
  std::filesystem::path path;
  std::string format;
  std::map<std::string, std::string> metadata;
  std::vector<TensorReport> tensors;
  uint64_t total_numel = 0;
  uint64_t total_bytes = 0;
  /// Zeros over the tensors whose zeros were counted, and those tensors' elements.
  uint64_t total_zeros = 0;
  uint64_t counted_numel = 0;

  nlohmann::ordered_json to_json() const;
  /// A fixed-width table with one row per tensor and a totals line.
  std::string to_table() const;
};

struct InspectOptions {
  /// Read every tensor to count zeros (sparsity %); off reads headers only.
  bool sparsity = true;
};

/// "1.5 MiB": bytes in the largest binary unit below 1024 of it.
std::string human_bytes(uint64_t bytes);

/// Opens `path` (any format Checkpoint::open accepts) and reports on every tensor, showing
/// progress while it reads tensor data.
InspectReport inspect(const std::filesystem::path& path, const InspectOptions& options = {});

}  // namespace stunt::io
