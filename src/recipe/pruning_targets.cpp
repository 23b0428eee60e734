#include "detail/pruning_targets.h"

#include <algorithm>
#include "detail/common_args.h"

#include <ATen/ATen.h>

#include "stunt/core/error.h"
#include "stunt/core/logging.h"
#include "stunt/core/name_pattern.h"
#include "stunt/core/strings.h"

namespace stunt::recipe::detail {
PruningTargets::PruningTargets(const ModifierSpec& spec, const std::string& sparsity_key)
    : spec_(spec), sparsity_key_(sparsity_key) {
  const ArgReader a = spec.reader();
  STUNT_CHECK_AS(RecipeError, !(a.has("targets") && a.contains("params")), spec.where(),
                 ": give the layers once, as targets (llm-compressor) or params (SparseML)");
  if (a.contains("targets") && !a["targets"].is_null()) {
    targets_ = string_list(a["targets"]);
  } else if (a.contains("params")) {
    targets_ = string_list(a["params"]);
    sparseml_params_ = true;
  } else {
    targets_ = {"Linear"};
    default_targets_ = true;
  }
  if (a.contains("ignore")) ignore_ = string_list(a["ignore"]);
  std::string structure = "unstructured";
  if (a.contains("mask_structure") && a["mask_structure"].is_string()) {
    structure = a["mask_structure"].get<std::string>();
  } else if (a.contains("mask_type")) {
    STUNT_CHECK_AS(ValueError, a["mask_type"].is_string(), spec.where(),
                   ": mask_type as a block shape is not supported; use \"unstructured\" or "
                   "\"N:M\" such as \"2:4\"");
    structure = a["mask_type"].get<std::string>();
  }
  structure_ = prune::parse_mask_structure(structure, spec.where() + ".mask_structure");
  // OWL's owl_m and owl_lmbda come only with sparsity_profile (a cross-check), refused here.
  STUNT_CHECK_AS(ValueError, !a.has("sparsity_profile") && !a.has("owl_m") && !a.has("owl_lmbda"),
                 spec.where(),
                 ": sparsity_profile (OWL) is not supported yet; give one sparsity, or one per "
                 "layer");
  if (a.contains(sparsity_key)) {
    const Value& s = a[sparsity_key];
    STUNT_CHECK_AS(ValueError, s.is_number() || s.is_array(), spec.where(), ": ", sparsity_key,
                   " must be a number or a list of numbers (one per target layer); per-layer "
                   "maps are not supported");
    if (s.is_number()) {
      sparsities_ = {s.get<double>()};
    } else {
      for (const auto& v : s) sparsities_.push_back(v.get<double>());
    }
  }
  for (double v : sparsities_) {
    STUNT_CHECK_AS(ValueError, v >= 0 && v < 1, spec.where(), ".", sparsity_key, ": ", v,
                   " is outside [0, 1); give the fraction of weights to prune, e.g. 0.5");
  }
}

/// SparseML names parameters, exactly or by a regex matched from the start of the name
/// ("re:.*attention.*weight"), or all prunable ones (__ALL_PRUNABLE__: linear and convolution
/// layers); a layer is named by its weight.
std::vector<model::Layer*> PruningTargets::match_params(const model::Model& model) const {
  const std::vector<model::Layer*> prunable = model.match({"Linear", "Conv2d"});
  const std::vector<model::Layer*> ignored = model.match(ignore_);
  std::vector<model::Layer*> out;
  for (model::Layer* layer : model.layers()) {
    const std::string weight = layer->name + ".weight";
    const bool selected = std::any_of(targets_.begin(), targets_.end(), [&](const std::string& p) {
      if (p == "__ALL__" || p == "__ALL_PRUNABLE__") {
        return std::find(prunable.begin(), prunable.end(), layer) != prunable.end();
      }
      return name_matches(p, weight);
    });
    if (selected && std::find(ignored.begin(), ignored.end(), layer) == ignored.end()) {
      out.push_back(layer);
    }
  }
  return out;
}

void PruningTargets::resolve(const model::Model& model) {
  layers_.clear();
  for (model::Layer* layer :
       sparseml_params_ ? match_params(model) : model.match(targets_, ignore_)) {
    // The class target "Linear" leaves the head (lm_head, often tied to the embeddings) alone;
    // name it to prune it.
    if (default_targets_ && layer->block < 0) {
      log::info(spec_.where(), ": ", layer->name,
                " is outside the transformer blocks and not pruned by the default targets");
      continue;
    }
    layers_.push_back({layer, 0.0});
  }
  STUNT_CHECK_AS(ValueError, !layers_.empty(), spec_.where(), ": targets [", join(targets_, ", "),
                 "] match no layer of this model");
  STUNT_CHECK_AS(ValueError, sparsities_.size() <= 1 || sparsities_.size() == layers_.size(),
                 spec_.where(), ".", sparsity_key_, ": ", sparsities_.size(), " values for ",
                 layers_.size(), " target layers; give one value, or one per layer");
  for (size_t i = 0; i < layers_.size(); ++i) {
    PrunedLayer& p = layers_[i];
    p.sparsity = sparsities_.empty()       ? structure_.sparsity()
                 : sparsities_.size() == 1 ? sparsities_.front()
                                           : sparsities_[i];
    prune::check_prunable(structure_, p.sparsity, p.layer->in_features(), p.layer->name,
                          spec_.where());
  }
}

std::vector<model::Layer*> PruningTargets::block_layers(int block) const {
  std::vector<model::Layer*> out;
  for (const PrunedLayer& p : layers_) {
    if (p.layer->block == block) out.push_back(p.layer);
  }
  return out;
}

const PrunedLayer* PruningTargets::find(const model::Layer& layer) const {
  for (const PrunedLayer& p : layers_) {
    if (p.layer == &layer) return &p;
  }
  return nullptr;
}

void PruningTargets::commit(State& state, model::Layer& layer, const prune::PruneResult& result) {
  layer.weight = result.weight;
  state.pruned[layer.name] = result.pruned;
}

}  // namespace stunt::recipe::detail
