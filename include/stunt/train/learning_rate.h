#pragma once
/// Learning-rate schedules over optimizer steps: a linear warmup from zero, then constant,
/// linear or cosine decay to a final rate at the last step (the shapes transformers' get_scheduler
/// offers), and SparseML's LearningRateFunctionModifier (linear or cosine between two epochs).

#include <cstdint>
#include <string>

namespace stunt::train {

enum class LearningRateShape { Constant, Linear, Cosine };

/// "constant", "linear", "cosine".
const char* to_string(LearningRateShape shape);
/// Parses a shape name; throws ValueError naming `where` and the known names.
LearningRateShape parse_learning_rate_shape(const std::string& name, const std::string& where);

/// The rate at every optimizer step of a run of `total_steps` steps.
struct LearningRateSchedule {
  /// The rate after warmup.
  double peak = 1e-4;
  /// Steps of linear warmup: step k < warmup_steps trains at peak * k / warmup_steps (step 0 at
  /// zero), as transformers' schedules do.
  int64_t warmup_steps = 0;
  LearningRateShape decay = LearningRateShape::Constant;
  /// The rate the decay approaches at the end of the run: after warmup, linear decay trains
  /// step k at final + (peak - final) * (total - k) / (total - warmup) and cosine at
  /// final + (peak - final) * (1 + cos(pi * (k - warmup) / (total - warmup))) / 2, which for
  /// final 0 are transformers' get_linear/cosine_schedule_with_warmup.
  double final_rate = 0.0;
  int64_t total_steps = 0;

  /// The rate of optimizer step `step` (0-based).
  double at(int64_t step) const;
  /// ValueError naming `where` when a rate is negative or warmup exceeds the run.
  void validate(const std::string& where) const;
};

/// SparseML's LearningRateFunctionModifier: from init_lr at start_epoch to final_lr at
/// end_epoch, linearly or along half a cosine; outside the window the modifier sets nothing.
struct LearningRateFunction {
  LearningRateShape shape = LearningRateShape::Linear;
  double init_lr = 0.0;
  double final_lr = 0.0;
  double start_epoch = 0.0;
  double end_epoch = 0.0;

  /// Whether `epoch` lies in [start_epoch, end_epoch].
  bool covers(double epoch) const;
  /// The rate at `epoch` (clamped into the window).
  double at(double epoch) const;
  void validate(const std::string& where) const;
};

}  // namespace stunt::train
