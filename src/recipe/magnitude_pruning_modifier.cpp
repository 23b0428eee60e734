// MagnitudePruningModifier (and SparseML's GMPruningModifier) in one-shot: the weights of
// smallest magnitude go, at the final sparsity, per layer or over all targets at once.
#include <ATen/ATen.h>

#include "detail/pruning_modifiers.h"
#include "detail/pruning_targets.h"
#include "stunt/core/error.h"
#include "stunt/core/logging.h"
#include "stunt/prune/magnitude.h"

namespace stunt::recipe::detail {
namespace {

class MagnitudePruningModifier final : public Modifier {
 public:
  explicit MagnitudePruningModifier(ModifierSpec spec)
      : Modifier(std::move(spec)), targets_(this->spec(), "final_sparsity") {
    const Value& a = this->spec().args;
    global_ = (a.contains("global_sparsity") && a["global_sparsity"].get<bool>()) ||
              (a.contains("apply_globally") && a["apply_globally"].get<bool>());
  }

 protected:
  void on_initialize(State& state) override {
    targets_.resolve(*state.model);
    STUNT_CHECK_AS(ValueError, !global_ || targets_.structure().unstructured(), spec().where(),
                   ": global sparsity ranks weights across layers, which N:M groups cannot; use "
                   "an unstructured mask or per-layer sparsity");
  }

 public:
  void finish(State& state) override {
    if (!global_) {
      for (const PrunedLayer& p : targets_.layers()) {
        PruningTargets::commit(state, *p.layer,
                               prune::magnitude_prune(p.layer->weight, p.sparsity,
                                                      targets_.structure(), p.layer->name));
      }
      return;
    }
    // One threshold for every target: the final_sparsity-th quantile of all magnitudes.
    std::vector<at::Tensor> magnitudes;
    int64_t total = 0;
    for (const PrunedLayer& p : targets_.layers()) {
      magnitudes.push_back(p.layer->weight.detach().abs().flatten().to(at::kFloat));
      total += p.layer->weight.numel();
    }
    const double sparsity = targets_.layers().front().sparsity;
    const int64_t count = static_cast<int64_t>(static_cast<double>(total) * sparsity);
    if (count == 0) return;
    const at::Tensor all = at::cat(magnitudes);
    magnitudes.clear();
    const double threshold = std::get<0>(all.kthvalue(count)).item<double>();
    for (const PrunedLayer& p : targets_.layers()) {
      prune::PruneResult result;
      result.pruned = p.layer->weight.abs().to(at::kFloat).le(threshold);
      result.weight = p.layer->weight.masked_fill(result.pruned, 0);
      PruningTargets::commit(state, *p.layer, result);
    }
    log::info(spec().type, ": global magnitude threshold ", threshold, " over ", total, " weights");
  }

 private:
  PruningTargets targets_;
  bool global_ = false;
};

/// Keeps every zero its targets hold now pruned through the rest of the recipe: later
/// modifiers see the masks in State::pruned (GPTQ quantizes them to zero).
class ConstantPruningModifier final : public Modifier {
 public:
  explicit ConstantPruningModifier(ModifierSpec spec)
      : Modifier(std::move(spec)), targets_(this->spec(), "sparsity") {}

 protected:
  void on_initialize(State& state) override { targets_.resolve(*state.model); }

 public:
  void finish(State& state) override {
    for (const PrunedLayer& p : targets_.layers()) {
      at::Tensor zeros = p.layer->weight == 0;
      auto it = state.pruned.find(p.layer->name);
      if (it != state.pruned.end()) zeros = zeros.logical_or(it->second);
      state.pruned[p.layer->name] = zeros;
    }
  }

 private:
  PruningTargets targets_;
};

}  // namespace

std::unique_ptr<Modifier> make_magnitude_pruning_modifier(const ModifierSpec& spec) {
  return std::make_unique<MagnitudePruningModifier>(spec);
}

std::unique_ptr<Modifier> make_constant_pruning_modifier(const ModifierSpec& spec) {
  return std::make_unique<ConstantPruningModifier>(spec);
}

}  // namespace stunt::recipe::detail
