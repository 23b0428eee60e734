#pragma once
/// What quantization decided for a model: the schemes (compressed-tensors config groups), the
/// ignore list, and each quantized layer's scales and zero points. The quantization modifiers
/// fill it in; the compressed-tensors writer reads it.

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "stunt/model/model.h"
#include "stunt/quant/qparams.h"
#include "stunt/quant/quant_args.h"

namespace stunt::quant {

struct LayerQuantization {
  /// The config group the layer belongs to ("group_0").
  std::string group;
  /// Scales and zero points of the weight; undefined when the scheme leaves weights alone.
  QParams weight;
  /// Calibrated scales of static input activations; undefined for dynamic or none.
  QParams input;
};

class QuantizationPlan {
 public:
  /// Adds `scheme` as config group "group_<n>", or returns the name of an equal group.
  std::string add_group(const QuantScheme& scheme);
  const std::vector<std::pair<std::string, QuantScheme>>& groups() const { return groups_; }
  const QuantScheme& scheme(const std::string& group) const;

  /// Entries for config.json's `ignore` (names or "re:" patterns), kept in order, no duplicates.
  void add_ignore(const std::vector<std::string>& entries);
  const std::vector<std::string>& ignore() const { return ignore_; }

  /// The record of `name`, created on first use.
  LayerQuantization& layer(const std::string& name) { return layers_[name]; }
  const LayerQuantization* find(const std::string& name) const;
  const std::map<std::string, LayerQuantization>& layers() const { return layers_; }
  bool empty() const { return layers_.empty(); }

 private:
  std::vector<std::pair<std::string, QuantScheme>> groups_;
  std::vector<std::string> ignore_;
  std::map<std::string, LayerQuantization> layers_;
};

/// From now on, `layer` quantizes its input before computing: dynamically per call, or with the
/// static `qparams`. Linear layers only.
void quantize_layer_inputs(model::Layer& layer, const QuantArgs& args, const QParams& qparams);

/// quantize_layer_inputs for every layer of `plan` whose scheme quantizes inputs.
void apply_input_quantization(model::Model& model, const QuantizationPlan& plan);

}  // namespace stunt::quant
