#pragma once
// SparseML's `!QuantizationModifier` (quantization-aware training) read as the llm-compressor
// QuantizationModifier that does the same: its scheme ("default", "deepsparse", "tensorrt", or
// input_activations / weights arguments) and legacy bit-width fields become one config group
// over Linear layers, and its epochs become the trainer's.

#include <optional>

#include "stunt/recipe/recipe.h"

namespace stunt::recipe::detail {

struct SparsemlQuantization {
  /// An llm-compressor QuantizationModifier spec (config_groups, ignore) at the same path.
  ModifierSpec llmcompressor;
  double start_epoch = 0.0;
  std::optional<double> freeze_observers_epoch;
  /// SparseML's strict (default true): every ignore entry must match a layer of the model.
  bool strict = true;
};

/// Reads every argument of `spec` (a SparseML QuantizationModifier): translates what Stunt can
/// train, refuses the rest naming the argument (NotImplementedError, ValueError).
SparsemlQuantization translate_sparseml_quantization(const ModifierSpec& spec);

}  // namespace stunt::recipe::detail
