// SparseGPTModifier: one-shot pruning with second-order reconstruction, block by block on
// calibration data.
#include <ATen/ATen.h>

#include <map>

#include "detail/pruning_modifiers.h"
#include "detail/pruning_targets.h"
#include "stunt/core/error.h"
#include "stunt/core/logging.h"
#include "stunt/kernels/hessian.h"
#include "stunt/prune/sparsegpt.h"

namespace stunt::recipe::detail {
namespace {

class SparseGptModifier final : public Modifier {
 public:
  explicit SparseGptModifier(ModifierSpec spec)
      : Modifier(std::move(spec)), targets_(this->spec(), "sparsity") {
    const ArgReader a = this->spec().reader();
    if (a.contains("block_size")) block_size_ = a["block_size"].get<int64_t>();
    if (a.contains("dampening_frac") && !a["dampening_frac"].is_null()) {
      dampening_frac_ = a["dampening_frac"].get<double>();
    }
    if (a.contains("preserve_sparsity_mask")) {
      preserve_mask_ = a["preserve_sparsity_mask"].get<bool>();
    }
  }

  bool needs_calibration() const override { return true; }
  /// Hessians are sums over samples.
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
      hessians_.emplace(layer->name, kernels::HessianAccumulator(layer->in_features(), at::kFloat));
    }
    return layers;
  }

  void observe(State&, const model::Layer& layer, const at::Tensor& input) override {
    auto it = hessians_.find(layer.name);
    if (it == hessians_.end()) return;
    // q, k and v (gate and up) read one tensor: its product is computed once per forward.
    if (!(shared_input_.defined() && input.is_same(shared_input_) &&
          input._version() == shared_version_)) {
      shared_input_ = input;
      shared_version_ = input._version();
      shared_product_ = kernels::HessianAccumulator::input_product(input, at::kFloat);
    }
    it->second.add_product(shared_product_, input);
  }

  void apply_block(State& state, int block) override {
    shared_input_ = at::Tensor();
    shared_product_ = at::Tensor();
    for (model::Layer* layer : targets_.block_layers(block)) {
      auto it = hessians_.find(layer->name);
      if (it == hessians_.end()) continue;
      STUNT_CHECK_AS(ValueError, it->second.samples() > 0, spec().where(), ": ", layer->name,
                     " never ran during calibration, so SparseGPT has no Hessian for it; "
                     "ignore it or check that the calibration data reaches it");
      prune::SparseGptOptions options;
      options.sparsity = targets_.find(*layer)->sparsity;
      options.structure = targets_.structure();
      options.block_size = block_size_;
      options.dampening_frac = dampening_frac_;
      options.preserve_mask = preserve_mask_;
      options.layer = layer->name;
      options.factor_cache = &factor_cache_;
      const prune::PruneResult result =
          prune::sparsegpt_prune(layer->weight, it->second.hessian(), options);
      PruningTargets::commit(state, *layer, result);
      log::debug("SparseGPT ", layer->name, ": loss ", result.loss, ", sparsity ",
                 prune::sparsity_of(result.weight));
      hessians_.erase(it);
    }
    factor_cache_.clear();
  }

 private:
  PruningTargets targets_;
  int64_t block_size_ = 128;
  double dampening_frac_ = 0.01;
  bool preserve_mask_ = false;
  at::Tensor shared_input_;
  uint32_t shared_version_ = 0;
  at::Tensor shared_product_;
  std::map<std::string, kernels::HessianAccumulator> hessians_;
  kernels::InverseFactorCache factor_cache_;
};

}  // namespace

std::unique_ptr<Modifier> make_sparsegpt_modifier(const ModifierSpec& spec) {
  return std::make_unique<SparseGptModifier>(spec);
}

}  // namespace stunt::recipe::detail
