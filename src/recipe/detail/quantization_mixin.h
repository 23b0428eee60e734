#pragma once
// What every llm-compressor quantization modifier shares (its QuantizationMixin): schemes from
// `scheme` / `config_groups`, targets and ignore, observer overrides, and the checks that a
// scheme fits each layer it selects, made before any work starts.

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "stunt/quant/observer.h"
#include "stunt/quant/quant_args.h"
#include "stunt/recipe/modifier.h"

namespace stunt::recipe::detail {

class QuantizationMixin {
 public:
  explicit QuantizationMixin(const ModifierSpec& spec);

  /// Matches the schemes' targets against the model, checks every layer (group size divides
  /// in_features, packable bits, the target device) and registers the config groups and ignore
  /// list in the state's plan. Throws naming the recipe path, the layer and the fix.
  void resolve(State& state);

  /// The layers this modifier quantizes, each with its config group, in model order.
  const std::vector<std::pair<model::Layer*, std::string>>& assignments() const {
    return assignments_;
  }
  /// Whether any selected layer quantizes its inputs with calibrated (static) scales.
  bool has_static_inputs() const;

  /// The schemes, for modifiers that adjust them before resolve() (GPTQ's actorder).
  std::vector<quant::QuantScheme>& schemes() { return schemes_; }

  /// The selected layers of `block` (-1: outside every block).
  std::vector<model::Layer*> block_layers(int block) const;
  /// The scheme of a selected layer.
  const quant::QuantScheme& scheme_of(const State& state, const model::Layer& layer) const;

  // Static input activation scales, calibrated during a modifier's pass.
  /// Starts input observers for the layers of `block` with static input schemes; returns them.
  std::vector<model::Layer*> begin_input_observers(const State& state, int block);
  /// Feeds an input to its observer; false when the layer has none.
  bool observe_input(const model::Layer& layer, const at::Tensor& input);
  /// Stores the observed scales of `block`'s layers in the plan.
  void finish_input_observers(State& state, int block);

  /// Quantizes `layer`'s weight by round to nearest with the scheme's weight observer and
  /// records it in the plan. No-op when the scheme leaves weights alone.
  static void quantize_weight_rtn(State& state, model::Layer& layer,
                                  const quant::QuantScheme& scheme, const std::string& group);

 protected:
  const ModifierSpec& spec_;
  /// (scheme, targets it selects) in recipe order.
  std::vector<quant::QuantScheme> schemes_;
  std::vector<std::string> ignore_;
  std::vector<std::pair<model::Layer*, std::string>> assignments_;
  std::map<std::string, std::unique_ptr<quant::Observer>> input_observers_;
};

/// Scales rounded to the dtype the checkpoint stores them in (the layer's weight dtype), as
/// compressed-tensors computes them in the model's dtype.
quant::QParams in_storage_precision(const State& state, const model::Layer& layer,
                                    quant::QParams qp);

}  // namespace stunt::recipe::detail
