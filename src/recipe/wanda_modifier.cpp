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
    if (it == norms_.end()) return;
    // q, k and v (gate and up) read one tensor: its sums of squares are computed once.
    if (!(shared_input_.defined() && input.is_same(shared_input_) &&
          input._version() == shared_version_)) {
      shared_input_ = input;
      shared_version_ = input._version();
      shared_sums_ = prune::InputNormAccumulator::square_sums(input);
    }
    it->second.add_square_sums(shared_sums_, input);
  }

  void apply_block(State& state, int block) override {
    shared_input_ = at::Tensor();
    shared_sums_ = at::Tensor();
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
  /// The last input observed and its sums of squares, reused by the next layer that reads it.
  at::Tensor shared_input_;
  uint32_t shared_version_ = 0;
  at::Tensor shared_sums_;
};

}  // namespace

std::unique_ptr<Modifier> make_wanda_modifier(const ModifierSpec& spec) {
  return std::make_unique<WandaModifier>(spec);
}

}  // namespace stunt::recipe::detail
