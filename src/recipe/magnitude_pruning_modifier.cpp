// MagnitudePruningModifier (and SparseML's GMPruningModifier) in one-shot: the weights of
// smallest magnitude go, at the final sparsity, per layer or over all targets at once.
#include <ATen/ATen.h>

#include "detail/pruning_modifiers.h"
#include "detail/pruning_targets.h"
#include "detail/recipe_parsing.h"
#include "stunt/core/error.h"
#include "stunt/core/logging.h"
#include "stunt/prune/magnitude.h"

namespace stunt::recipe::detail {
namespace {

class MagnitudePruningModifier final : public Modifier {
 public:
  explicit MagnitudePruningModifier(ModifierSpec spec)
      : Modifier(std::move(spec)), targets_(this->spec(), "final_sparsity") {
    const ArgReader a = this->spec().reader();
    global_ = (a.contains("global_sparsity") && a["global_sparsity"].get<bool>()) ||
              (a.contains("apply_globally") && a["apply_globally"].get<bool>());
    STUNT_CHECK_AS(NotImplementedError, !(a.contains("phased") && a["phased"].get<bool>()),
                   this->spec().where(),
                   ".phased: phased pruning (alternating pruned and recovery phases while "
                   "training) is not implemented; remove phased");
    // A gradual schedule (Zhu & Gupta): sparsity rises from init_sparsity at start_epoch to
    // final_sparsity at end_epoch, every update_frequency, along inter_func (llm-compressor:
    // update_scheduler with scheduler_args). It needs training between the updates; one-shot,
    // only its end point can run, which is what a schedule with start_epoch == end_epoch (or
    // none) asks for: then init_sparsity and the curve decide nothing and final_sparsity holds.
    const bool spans_epochs = a.has("start_epoch") && a.has("end_epoch") &&
                              a["end_epoch"].get<double>() != a["start_epoch"].get<double>();
    if (spans_epochs) {
      throw NotImplementedError(str(
          this->spec().where(), ": prunes gradually from init_sparsity ",
          detail::dump_text(a["init_sparsity"]), " at epoch ", detail::dump_text(a["start_epoch"]),
          " to final_sparsity ", detail::dump_text(a["final_sparsity"]), " at epoch ",
          detail::dump_text(a["end_epoch"]),
          " while the model trains, but its stage says run_type: oneshot. Make it a train stage "
          "(run_type: train, or no run_type) and give the training data with --dataset; for "
          "one-shot magnitude pruning at final_sparsity, set end_epoch equal to start_epoch (or "
          "remove both)"));
    }
    for (const char* schedule_key : {"init_sparsity", "inter_func", "update_scheduler",
                                     "scheduler_args", "leave_enabled", "score_type"}) {
      a.contains(schedule_key);
    }
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
