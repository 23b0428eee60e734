#include "detail/quantization_mixin.h"
#include "detail/common_args.h"

#include <set>

#include "stunt/core/error.h"
#include "stunt/core/logging.h"
#include "stunt/quant/compressed_tensors.h"
#include "stunt/quant/observer.h"
#include "stunt/quant/qparams.h"

namespace stunt::recipe::detail {
namespace {

/// llm-compressor's observer defaults: weights memoryless_minmax (and the memoryless variant of
/// whatever is named, since weights are observed once), static inputs minmax, dynamic none.
void apply_observer(std::optional<quant::QuantArgs>& args, const std::optional<std::string>& name,
                    bool weights) {
  if (!args) return;
  std::optional<std::string> chosen = name ? name : args->observer;
  if (!chosen) {
    if (args->dynamic == quant::DynamicKind::Static)
      chosen = weights ? "memoryless_minmax" : "minmax";
  } else if (weights && (*chosen == "minmax" || *chosen == "static_minmax")) {
    chosen = "memoryless_minmax";
  } else if (weights && *chosen == "mse") {
    chosen = "memoryless_mse";
  }
  if (args->dynamic != quant::DynamicKind::Static) chosen.reset();
  args->observer = chosen;
}

std::optional<std::string> optional_string(const ArgReader& args, const char* key) {
  if (!args.has(key)) return std::nullopt;
  return args[key].get<std::string>();
}

}  // namespace

QuantizationMixin::QuantizationMixin(const ModifierSpec& spec) : spec_(spec) {
  const ArgReader a = spec.reader();
  const std::vector<std::string> targets =
      a.contains("targets") ? string_list(a["targets"]) : std::vector<std::string>{"Linear"};
  ignore_ = a.contains("ignore") ? string_list(a["ignore"]) : std::vector<std::string>{};
  auto preset = [&](const std::string& name, std::vector<std::string> preset_targets) {
    const quant::SchemePreset* p = quant::find_scheme_preset(name);
    STUNT_ASSERT(p != nullptr, "the schema admitted an unknown preset ", name);
    quant::QuantScheme scheme = p->scheme;
    scheme.targets = std::move(preset_targets);
    return scheme;
  };
  if (a.contains("config_groups") && !a["config_groups"].is_null()) {
    for (auto it = a["config_groups"].begin(); it != a["config_groups"].end(); ++it) {
      schemes_.push_back(quant::QuantScheme::from_json(it.value()));
    }
  } else if (a.contains("scheme") && a["scheme"].is_string()) {
    schemes_.push_back(preset(a["scheme"].get<std::string>(), targets));
  } else if (a.contains("scheme") && a["scheme"].is_object()) {
    for (auto it = a["scheme"].begin(); it != a["scheme"].end(); ++it) {
      schemes_.push_back(preset(it.key(), string_list(it.value())));
    }
  }
  std::optional<std::string> weight_observer = optional_string(a, "weight_observer");
  std::optional<std::string> input_observer = optional_string(a, "input_observer");
  if (a.contains("observer") && a["observer"].is_object()) {
    for (auto it = a["observer"].begin(); it != a["observer"].end(); ++it) {
      STUNT_CHECK_AS(RecipeError, it.key() == "weights" || it.key() == "input", spec.where(),
                     ".observer.", it.key(),
                     ": unknown role; observer maps 'weights' and "
                     "'input' to observer names (output activations are not quantized)");
    }
    if (a["observer"].contains("weights"))
      weight_observer = a["observer"]["weights"].get<std::string>();
    if (a["observer"].contains("input")) input_observer = a["observer"]["input"].get<std::string>();
  }
  STUNT_CHECK_AS(NotImplementedError, !a.has("output_observer"), spec.where(),
                 ".output_observer: output activations are not quantized in Stunt, so there is "
                 "nothing to observe; remove it");
  STUNT_CHECK_AS(
      NotImplementedError,
      !(a.contains("bypass_divisibility_checks") && a["bypass_divisibility_checks"].get<bool>()),
      spec.where(),
      ".bypass_divisibility_checks: Stunt quantizes a layer group-wise only when the "
      "group size divides its in_features; remove this key and add such layers to "
      "ignore");
  STUNT_CHECK_AS(NotImplementedError, !a.has("kv_cache_scheme"), spec.where(),
                 ".kv_cache_scheme: KV-cache quantization is not implemented; remove "
                 "kv_cache_scheme (the weights and inputs are quantized without it)");
  // Strategies the quantizers do not implement, refused before any model is loaded.
  for (const quant::QuantScheme& scheme : schemes_) {
    for (const auto* args : {&scheme.weights, &scheme.input_activations}) {
      if (!*args) continue;
      const quant::QuantStrategy strategy = (*args)->resolved_strategy();
      if (strategy == quant::QuantStrategy::Block ||
          strategy == quant::QuantStrategy::TensorGroup ||
          strategy == quant::QuantStrategy::AttnHead) {
        throw NotImplementedError(str(spec.where(), ": strategy '", quant::to_string(strategy),
                                      "' is not implemented; use tensor, channel or group for "
                                      "weights (token for dynamic inputs)"));
      }
    }
    if (scheme.output_activations) {
      throw NotImplementedError(str(spec.where(),
                                    ": output_activations quantization is not implemented; "
                                    "remove it from the scheme (vLLM uses it only for KV caches)"));
    }
  }
  for (quant::QuantScheme& scheme : schemes_) {
    apply_observer(scheme.weights, weight_observer, true);
    apply_observer(scheme.input_activations, input_observer, false);
  }
}

bool QuantizationMixin::has_static_inputs() const {
  for (const quant::QuantScheme& s : schemes_) {
    if (s.input_activations && s.input_activations->dynamic == quant::DynamicKind::Static) {
      return true;
    }
  }
  return false;
}

void QuantizationMixin::resolve(State& state) {
  STUNT_CHECK(state.model != nullptr, spec_.where(), ": no model to quantize");
  const std::string where = spec_.where();
  std::set<const model::Layer*> taken;
  for (const quant::QuantScheme& scheme : schemes_) {
    const std::string group = state.quantization.add_group(scheme);
    const std::string format = quant::scheme_format(scheme);
    if (scheme.input_activations && scheme.input_activations->type == quant::QuantType::Float &&
        (state.target == "a10" || state.target == "a100")) {
      throw ValueError(
          str(where, ": FP8 activations need FP8 tensor cores, which the ", state.target,
              " (Ampere) lacks; vLLM would fall back to weight-only "
              "FP8 there. Use W8A8 (int8) or W4A16 for this target, or --target h100"));
    }
    for (model::Layer* layer : state.model->match(scheme.targets, ignore_)) {
      if (!taken.insert(layer).second) continue;  // the first scheme that selects a layer wins
      if (layer->kind == model::LayerKind::Embedding) continue;
      try {
        if (scheme.weights) {
          quant::num_groups(*scheme.weights, layer->in_features(), layer->name);
          quant::check_packable(*scheme.weights, format, layer->name);
          quant::check_finite(layer->weight, layer->name + ".weight");
        }
        if (scheme.input_activations) {
          STUNT_CHECK_AS(NotImplementedError, layer->kind == model::LayerKind::Linear, layer->name,
                         ": input activation quantization is implemented for linear layers only; "
                         "add it to ignore or quantize weights only");
        }
      } catch (const ValueError& e) {
        throw ValueError(str(where, ": ", e.what()));
      } catch (const NotImplementedError& e) {
        throw NotImplementedError(str(where, ": ", e.what()));
      }
      assignments_.emplace_back(layer, group);
      // Recorded now so that transforms running before the quantization (AWQ) see the scheme.
      state.quantization.layer(layer->name).group = group;
    }
  }
  STUNT_CHECK_AS(ValueError, !assignments_.empty(), where,
                 ": the targets select no layer of this model; check targets and ignore against "
                 "`compress inspect` (layer names) or use targets: [Linear]");
  state.quantization.add_ignore(ignore_);
  log::info(spec_.type, ": ", assignments_.size(), " layers to quantize");
}

std::vector<model::Layer*> QuantizationMixin::block_layers(int block) const {
  std::vector<model::Layer*> out;
  for (const auto& [layer, group] : assignments_) {
    if (layer->block == block) out.push_back(layer);
  }
  return out;
}

const quant::QuantScheme& QuantizationMixin::scheme_of(const State& state,
                                                       const model::Layer& layer) const {
  for (const auto& [l, group] : assignments_) {
    if (l == &layer) return state.quantization.scheme(group);
  }
  throw ValueError(str(layer.name, " is not selected by ", spec_.where()));
}

std::vector<model::Layer*> QuantizationMixin::begin_input_observers(const State& state, int block) {
  std::vector<model::Layer*> out;
  for (model::Layer* layer : block_layers(block)) {
    const quant::QuantScheme& scheme = scheme_of(state, *layer);
    if (!scheme.input_activations ||
        scheme.input_activations->dynamic != quant::DynamicKind::Static) {
      continue;
    }
    const quant::QuantArgs& args = *scheme.input_activations;
    input_observers_[layer->name] = quant::Observer::create(args.observer.value_or("minmax"), args,
                                                            quant::Observed::Activation);
    out.push_back(layer);
  }
  return out;
}

bool QuantizationMixin::observe_input(const model::Layer& layer, const at::Tensor& input) {
  auto it = input_observers_.find(layer.name);
  if (it == input_observers_.end()) return false;
  it->second->update(input);
  return true;
}

void QuantizationMixin::finish_input_observers(State& state, int block) {
  for (model::Layer* layer : block_layers(block)) {
    auto it = input_observers_.find(layer->name);
    if (it == input_observers_.end()) continue;
    quant::LayerQuantization& record = state.quantization.layer(layer->name);
    record.group = [&] {
      for (const auto& [l, group] : assignments_) {
        if (l == layer) return group;
      }
      return std::string();
    }();
    STUNT_CHECK_AS(ValueError, it->second->has_data(), spec_.where(), ": ", layer->name,
                   " never ran during calibration, so its input scale is unknown; add it to "
                   "ignore or check the calibration data");
    record.input = in_storage_precision(state, *layer, it->second->qparams());
    input_observers_.erase(it);
  }
}

quant::QParams in_storage_precision(const State& state, const model::Layer& layer,
                                    quant::QParams qp) {
  const c10::ScalarType stored = state.model->stored_dtype(layer.name + ".weight");
  const c10::ScalarType compute = qp.scale.scalar_type();
  if (stored != compute && c10::isFloatingType(stored)) qp.scale = qp.scale.to(stored).to(compute);
  return qp;
}

void QuantizationMixin::quantize_weight_rtn(State& state, model::Layer& layer,
                                            const quant::QuantScheme& scheme,
                                            const std::string& group) {
  quant::LayerQuantization& record = state.quantization.layer(layer.name);
  record.group = group;
  if (!scheme.weights) return;
  const quant::QuantArgs& args = *scheme.weights;
  auto observer = quant::Observer::create(args.observer.value_or("memoryless_minmax"), args,
                                          quant::Observed::Weight);
  record.weight = in_storage_precision(state, layer, observer->update(layer.weight));
  layer.weight = quant::fake_quantize_weight(layer.weight, record.weight, args);
}

}  // namespace stunt::recipe::detail
