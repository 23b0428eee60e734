// WandaPruningModifier: one-shot pruning by |weight| x input norm, block by block on
// calibration data.
#include <ATen/ATen.h>

#include <map>

#include "detail/pruning_modifiers.h"
#include "detail/pruning_targets.h"
#include "stunt/core/error.h"
#include "stunt/core/logging.h"
#include "stunt/prune/wanda.h"

namespace stunt::recipe::detail {
namespace {

class WandaModifier final : public Modifier {
 public:
  explicit WandaModifier(ModifierSpec spec)
      : Modifier(std::move(spec)), targets_(this->spec(), "sparsity") {}

  bool needs_calibration() const override { return true; }
  /// Input norms are sums over samples.
  bool batch_invariant() const override { return true; }

 protected:
  void on_initialize(State& state) override {
    targets_.resolve(*state.model);
    log::info(spec().type, ": ", targets_.layers().size(), " layers to prune, ",
              targets_.structure().to_string());
  }

 public:
  std::vector<model::Layer*> calibration_layers(State&, int block) override {
    std::vector<model::Layer*> layers = targets_.block_layers(block);
    for (model::Layer* layer : layers) {
      norms_.emplace(layer->name, prune::InputNormAccumulator(layer->in_features()));
    }
    return layers;
  }

  void observe(State&, const model::Layer& layer, const at::Tensor& input) override {
    auto it = norms_.find(layer.name);
    if (it != norms_.end()) it->second.add(input);
  }

  void apply_block(State& state, int block) override {
    for (model::Layer* layer : targets_.block_layers(block)) {
      auto it = norms_.find(layer->name);
      if (it == norms_.end()) continue;
      STUNT_CHECK_AS(ValueError, it->second.samples() > 0, spec().where(), ": ", layer->name,
                     " never ran during calibration, so Wanda has no input norms for it; "
                     "ignore it or check that the calibration data reaches it");
      const prune::PruneResult result =
          prune::wanda_prune(layer->weight, it->second.squared_norms(),
                             targets_.find(*layer)->sparsity, targets_.structure(), layer->name);
      PruningTargets::commit(state, *layer, result);
      norms_.erase(it);
    }
  }

 private:
  PruningTargets targets_;
  std::map<std::string, prune::InputNormAccumulator> norms_;
};

}  // namespace

std::unique_ptr<Modifier> make_wanda_modifier(const ModifierSpec& spec) {
  return std::make_unique<WandaModifier>(spec);
}

}  // namespace stunt::recipe::detail
