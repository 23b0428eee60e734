#include "stunt/quant/quantization_plan.h"

#include <ATen/ATen.h>

#include <algorithm>

#include "stunt/core/error.h"

namespace stunt::quant {

std::string QuantizationPlan::add_group(const QuantScheme& scheme) {
  for (const auto& [name, existing] : groups_) {
    if (existing.to_json() == scheme.to_json()) return name;
  }
  std::string name = str("group_", groups_.size());
  groups_.emplace_back(name, scheme);
  return name;
}

const QuantScheme& QuantizationPlan::scheme(const std::string& group) const {
  for (const auto& [name, scheme] : groups_) {
    if (name == group) return scheme;
  }
  throw ValueError(str("no quantization config group named '", group, "'"));
}

void QuantizationPlan::add_ignore(const std::vector<std::string>& entries) {
  for (const auto& e : entries) {
    if (std::find(ignore_.begin(), ignore_.end(), e) == ignore_.end()) ignore_.push_back(e);
  }
}

const LayerQuantization* QuantizationPlan::find(const std::string& name) const {
  auto it = layers_.find(name);
  return it == layers_.end() ? nullptr : &it->second;
}

void quantize_layer_inputs(model::Layer& layer, const QuantArgs& args, const QParams& qparams) {
  STUNT_CHECK_AS(NotImplementedError, layer.kind == model::LayerKind::Linear, layer.name,
                 ": input activation quantization is implemented for linear layers, not ",
                 model::layer_kind_name(layer.kind),
                 " layers; quantize its weights only or add it to ignore");
  STUNT_CHECK_AS(ValueError, args.dynamic != DynamicKind::Static || qparams.scale.defined(),
                 layer.name, ": static input quantization needs calibrated scales");
  layer.forward = [args, qparams](const at::Tensor& input, const model::Layer& self) {
    const at::Tensor x = fake_quantize_activation(input, args, &qparams);
    return at::linear(x, self.weight, self.bias);
  };
}

void apply_input_quantization(model::Model& model, const QuantizationPlan& plan) {
  for (const auto& [name, record] : plan.layers()) {
    const QuantScheme& scheme = plan.scheme(record.group);
    if (scheme.input_activations) {
      quantize_layer_inputs(model.layer(name), *scheme.input_activations, record.input);
    }
  }
}

}  // namespace stunt::quant
