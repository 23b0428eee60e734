#pragma once
// The layers a pruning modifier prunes and at which sparsity: targets and ignore as recipes write
// them, one sparsity or one per layer, and the mask structure, checked against every layer.

#include <string>
#include <vector>

#include "stunt/prune/mask.h"
#include "stunt/recipe/modifier.h"

namespace stunt::recipe::detail {

struct PrunedLayer {
  model::Layer* layer = nullptr;
  double sparsity = 0;
};

class PruningTargets {
 public:
  /// Reads targets (or SparseML's params), ignore, mask_structure (or mask_type) and the
  /// sparsity under `sparsity_key` ("sparsity", or "final_sparsity" for magnitude pruning);
  /// refuses sparsity_profile (OWL), not supported yet.
  PruningTargets(const ModifierSpec& spec, const std::string& sparsity_key);
  /// Matches the model's layers and checks each against the structure and its sparsity.
  void resolve(const model::Model& model);
  const std::vector<PrunedLayer>& layers() const { return layers_; }
  std::vector<model::Layer*> block_layers(int block) const;
  const PrunedLayer* find(const model::Layer& layer) const;
  const prune::MaskStructure& structure() const { return structure_; }
  /// The sparsities as given (one, or one per target), before resolve().
  const std::vector<double>& sparsities() const { return sparsities_; }
  /// Replaces the layer's weight with the pruned one and records its mask in the state.
  static void commit(State& state, model::Layer& layer, const prune::PruneResult& result);

 private:
  std::vector<model::Layer*> match_params(const model::Model& model) const;

  const ModifierSpec& spec_;
  std::string sparsity_key_;
  std::vector<std::string> targets_;
  std::vector<std::string> ignore_;
  bool default_targets_ = false;
  /// targets_ are SparseML's parameter names (params), not layer names.
  bool sparseml_params_ = false;
  std::vector<double> sparsities_;
  prune::MaskStructure structure_;
  std::vector<PrunedLayer> layers_;
};

}  // namespace stunt::recipe::detail
