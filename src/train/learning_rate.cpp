#include "stunt/train/learning_rate.h"

#include <algorithm>
#include <cmath>

#include "stunt/core/error.h"

namespace stunt::train {
namespace {

constexpr double kPi = 3.14159265358979323846;

/// The fraction of the way from 0 to 1 that a cosine half-period has gone at progress x.
double cosine_progress(double x) { return (1.0 - std::cos(kPi * x)) / 2.0; }

}  // namespace

const char* to_string(LearningRateShape shape) {
  switch (shape) {
    case LearningRateShape::Constant:
      return "constant";
    case LearningRateShape::Linear:
      return "linear";
    case LearningRateShape::Cosine:
      return "cosine";
  }
  return "?";
}

LearningRateShape parse_learning_rate_shape(const std::string& name, const std::string& where) {
  for (LearningRateShape s :
       {LearningRateShape::Constant, LearningRateShape::Linear, LearningRateShape::Cosine}) {
    if (name == to_string(s)) return s;
  }
  throw ValueError(str(where, ": learning-rate schedule '", name,
                       "' is unknown; use constant, linear or cosine"));
}

double LearningRateSchedule::at(int64_t step) const {
  if (step < warmup_steps) {
    return peak * static_cast<double>(step) / static_cast<double>(warmup_steps);
  }
  if (decay == LearningRateShape::Constant) return peak;
  const double span = static_cast<double>(std::max<int64_t>(total_steps - warmup_steps, 1));
  const double done = std::clamp(static_cast<double>(step - warmup_steps) / span, 0.0, 1.0);
  // Linear: the share of the decay still ahead, (total - step) / (total - warmup).
  const double remaining =
      decay == LearningRateShape::Linear ? 1.0 - done : 1.0 - cosine_progress(done);
  return final_rate + (peak - final_rate) * remaining;
}

void LearningRateSchedule::validate(const std::string& where) const {
  STUNT_CHECK_AS(ValueError, std::isfinite(peak) && peak >= 0, where, ": learning rate ", peak,
                 " must be a number >= 0");
  STUNT_CHECK_AS(ValueError, std::isfinite(final_rate) && final_rate >= 0, where,
                 ": final learning rate ", final_rate, " must be a number >= 0");
  STUNT_CHECK_AS(ValueError, warmup_steps >= 0 && warmup_steps <= total_steps, where,
                 ": warmup of ", warmup_steps, " steps does not fit a run of ", total_steps,
                 " steps; shorten the warmup");
}

bool LearningRateFunction::covers(double epoch) const {
  return epoch >= start_epoch && epoch <= end_epoch;
}

double LearningRateFunction::at(double epoch) const {
  if (end_epoch <= start_epoch) return final_lr;
  const double x = std::clamp((epoch - start_epoch) / (end_epoch - start_epoch), 0.0, 1.0);
  // SparseML: linear init + x * (final - init); cosine along half a period from init to final
  // (its two branches, for rising and falling rates, are this one expression).
  const double y = shape == LearningRateShape::Cosine ? cosine_progress(x) : x;
  return init_lr + y * (final_lr - init_lr);
}

void LearningRateFunction::validate(const std::string& where) const {
  STUNT_CHECK_AS(ValueError, shape != LearningRateShape::Constant, where,
                 ": lr_func must be linear or cosine");
  STUNT_CHECK_AS(ValueError, std::isfinite(init_lr) && init_lr >= 0, where, ": init_lr ", init_lr,
                 " must be a number >= 0");
  STUNT_CHECK_AS(ValueError, std::isfinite(final_lr) && final_lr >= 0, where, ": final_lr ",
                 final_lr, " must be a number >= 0");
  STUNT_CHECK_AS(ValueError, start_epoch >= 0 && end_epoch >= start_epoch, where, ": end_epoch ",
                 end_epoch, " comes before start_epoch ", start_epoch,
                 "; the schedule must end at or after it starts");
}

}  // namespace stunt::train
