#pragma once
/// Gradual pruning schedules (Zhu & Gupta 2017, as SparseML's GMPruningModifier runs them): the
/// sparsity rises from an initial to a final value between two epochs along a linear, cubic or
/// inverse-cubic curve, and masks are recomputed every `update_frequency` epochs in between.
///
/// Time is training progress in epochs: after k optimizer steps of S per epoch it is
/// epoch_after_steps(k, S) = floor(k / S) + (k mod S) / S, counted as SparseML's step wrapper
/// counts it. Stunt evaluates the schedule before the first step and after every optimizer step,
/// so the final update lands on the step that completes `end_epoch` (SparseML evaluates before
/// each step and misses the final update when training stops at exactly `end_epoch`).

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <optional>
#include <string>

namespace stunt::prune {

enum class Interpolation { Linear, Cubic, InverseCubic };

/// "linear", "cubic", "inverse_cubic".
const char* to_string(Interpolation interpolation);
/// Parses SparseML's inter_func names; throws ValueError naming `where` and the known names.
Interpolation parse_interpolation(const std::string& name, const std::string& where);

/// SparseML's interpolate(): progress x = (t - t0) / (t1 - t0); y = x (linear),
/// 1 - (1 - x)^3 (cubic), 1 - (1 - x)^(1/3) (inverse cubic); y within machine epsilon of 0 or 1
/// gives y0 or y1 exactly, otherwise y0 + y * (y1 - y0). x is clipped to [0, 1] first, which
/// changes nothing for linear and cubic and defines inverse cubic past the end (where SparseML's
/// Python raises on a complex number). t1 == t0 jumps to y1 at t0.
double interpolate(double t, double t0, double t1, double y0, double y1,
                   Interpolation interpolation);

/// Training progress in epochs after `steps` optimizer steps of `steps_per_epoch` each.
double epoch_after_steps(int64_t steps, int64_t steps_per_epoch);

/// One gradual schedule, in epochs.
struct GradualSchedule {
  double start_epoch = 0.0;
  double end_epoch = 0.0;
  /// Epochs between mask updates; <= 0 updates after every step.
  double update_frequency = 0.0;
  double init_sparsity = 0.0;
  double final_sparsity = 0.0;
  Interpolation interpolation = Interpolation::Cubic;

  /// end >= start >= 0, sparsities in [0, 1): ValueError naming `where` (a recipe path) and
  /// the field otherwise.
  void validate(const std::string& where) const;
  /// The target sparsity at `epoch`.
  double sparsity_at(double epoch) const;
  /// Whether the masks update at `epoch`, given the epoch of the previous update (none before
  /// the first): at the first evaluation at or after the start, at the first at or after the
  /// end, and in between once `update_frequency` epochs have passed since the previous one.
  /// Never after the end has been reached.
  bool update_due(double epoch, std::optional<double> last_update) const;
};

/// Movement pruning's scores (Sanh et al. 2020, hard movement): each optimizer step adds
/// -grad * weight, so weights moving toward zero score low and are pruned first. SparseML scales
/// the sum by 0.01, which changes no ranking.
class MovementScores {
 public:
  MovementScores() = default;
  /// Adds -grad * weight to the scores (created at zero on the first call). A gradient with NaN
  /// is skipped, as SparseML skips it; returns whether it was added.
  bool accumulate(const at::Tensor& weight, const at::Tensor& grad);
  /// The accumulated scores ([out, in]); undefined before the first step.
  const at::Tensor& scores() const { return scores_; }
  /// Restores scores from a checkpoint.
  void restore(at::Tensor scores) { scores_ = std::move(scores); }

 private:
  at::Tensor scores_;
};

/// The pruned positions (true = pruned) for an unstructured target: the round(sparsity * numel)
/// (half to even, as Python) lowest `scores`, ties to the lower flat index (SparseML rounds the
/// count; the one-shot pruners truncate it, as llm-compressor does).
at::Tensor lowest_scores_pruned(const at::Tensor& scores, double sparsity);

}  // namespace stunt::prune
