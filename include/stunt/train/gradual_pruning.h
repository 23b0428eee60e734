#pragma once
/// Pruning during training, as SparseML's GMPruningModifier, MagnitudePruningModifier,
/// GlobalMagnitudePruningModifier, MovementPruningModifier and ConstantPruningModifier run it:
/// masks follow a gradual schedule (prune/gradual_schedule.h), pruned weights stay zero and get
/// no gradient (prune/parameter_masks.h), and are zeroed again after every optimizer step.
///
/// N:M masks grow gradually too (SparseML refuses targets between 0 and N/M): each update
/// prunes the lowest-scoring weights among the N lowest of every M, so the pattern is always a
/// subset of an N:M pattern and is exactly N:M once the target reaches N/M.

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "stunt/model/model.h"
#include "stunt/prune/gradual_schedule.h"
#include "stunt/prune/mask.h"
#include "stunt/prune/parameter_masks.h"
#include "stunt/train/trainer.h"

namespace stunt::train {

enum class PruningScore {
  /// |w| (Zhu & Gupta 2017).
  Magnitude,
  /// Accumulated -grad * w (Sanh et al. 2020).
  Movement,
  /// No scores: the zeros the weights hold at `hold_from` stay zero until `hold_until` (or the
  /// end of training), as SparseML's ConstantPruningModifier holds them.
  ExistingZeros,
};

struct GradualPruningOptions {
  /// Key of this method's state in checkpoints (the recipe path).
  std::string name;
  prune::GradualSchedule schedule;
  prune::MaskStructure structure;
  PruningScore score = PruningScore::Magnitude;
  /// One threshold across all layers instead of one per layer (unstructured only).
  bool global = false;
  /// Keep holding the masks after the schedule ends (SparseML's leave_enabled).
  bool leave_enabled = true;
  /// ExistingZeros only: the epochs between which the zeros are held.
  double hold_from = 0.0;
  std::optional<double> hold_until;
};

class GradualPruning : public TrainingCallbacks {
 public:
  /// Prunes the weights of `layers`. ValueError naming options.name when the structure does not
  /// tile a layer or the schedule is invalid.
  GradualPruning(std::vector<model::Layer*> layers, GradualPruningOptions options);
  ~GradualPruning() override;

  std::string name() const override { return options_.name; }
  void on_train_start(const StepInfo& info) override;
  void on_batch_start(const StepInfo& info) override;
  void on_optimizer_pre_step(const StepInfo& info) override;
  void on_optimizer_post_step(const StepInfo& info) override;
  void on_train_end(const StepInfo& info) override;
  void save_state(CallbackState& state) const override;
  void load_state(const CallbackState& state) override;
  void metrics(std::map<std::string, double>& out) const override;

  /// The sparsity the last update applied (0 before the first).
  double applied_sparsity() const { return applied_; }
  /// The epoch of the last update, if any.
  std::optional<double> last_update() const { return last_update_; }

 private:
  void update(double epoch);
  /// ExistingZeros: starts or stops holding the zeros as the epoch says.
  void hold_existing_zeros(double epoch);
  /// Pruned positions of every layer for the target `sparsity`.
  std::vector<at::Tensor> choose(double sparsity) const;
  at::Tensor scores(size_t layer) const;

  std::vector<model::Layer*> layers_;
  GradualPruningOptions options_;
  std::unique_ptr<prune::ParameterMasks> masks_;
  std::vector<prune::MovementScores> movement_;
  std::optional<double> last_update_;
  double applied_ = 0.0;
  /// Restored masks, applied at on_train_start instead of recomputing them.
  std::vector<at::Tensor> restored_;
};

}  // namespace stunt::train
