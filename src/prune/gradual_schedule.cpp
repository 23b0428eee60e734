#include "stunt/prune/gradual_schedule.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "stunt/core/error.h"

namespace stunt::prune {
namespace {

/// Two evaluations of progress count as the same epoch within this margin: progress is a sum
/// of step fractions, and 0.2 + 0.1 > 0.3 in doubles would otherwise skip an update that
/// SparseML's exact comparison also skips (its updates drift by a step). 1e-9 epochs is far
/// below one step of any real epoch (that would take a billion steps per epoch).
constexpr double kEpochTolerance = 1e-9;

}  // namespace

const char* to_string(Interpolation interpolation) {
  switch (interpolation) {
    case Interpolation::Linear:
      return "linear";
    case Interpolation::Cubic:
      return "cubic";
    case Interpolation::InverseCubic:
      return "inverse_cubic";
  }
  return "?";
}

Interpolation parse_interpolation(const std::string& name, const std::string& where) {
  for (Interpolation i :
       {Interpolation::Linear, Interpolation::Cubic, Interpolation::InverseCubic}) {
    if (name == to_string(i)) return i;
  }
  throw ValueError(str(where, ": inter_func '", name,
                       "' is unknown; use linear, cubic (the default) or inverse_cubic"));
}

double interpolate(double t, double t0, double t1, double y0, double y1,
                   Interpolation interpolation) {
  if (t1 <= t0) return t >= t0 ? y1 : y0;
  const double x = std::clamp((t - t0) / (t1 - t0), 0.0, 1.0);
  double y = x;
  if (interpolation == Interpolation::Cubic) y = 1.0 - std::pow(1.0 - x, 3.0);
  if (interpolation == Interpolation::InverseCubic) y = 1.0 - std::pow(1.0 - x, 1.0 / 3.0);
  // SparseML snaps to the ends within sys.float_info.epsilon.
  const double eps = std::numeric_limits<double>::epsilon();
  if (y <= eps) return y0;
  if (y >= 1.0 - eps) return y1;
  return y * (y1 - y0) + y0;
}

double epoch_after_steps(int64_t steps, int64_t steps_per_epoch) {
  STUNT_CHECK(steps >= 0 && steps_per_epoch > 0, "epoch_after_steps: needs steps >= 0 (got ", steps,
              ") and steps per epoch > 0 (got ", steps_per_epoch, ")");
  return static_cast<double>(steps / steps_per_epoch) +
         static_cast<double>(steps % steps_per_epoch) / static_cast<double>(steps_per_epoch);
}

void GradualSchedule::validate(const std::string& where) const {
  STUNT_CHECK_AS(ValueError, std::isfinite(start_epoch) && start_epoch >= 0, where,
                 ": start_epoch ", start_epoch, " must be a number >= 0");
  STUNT_CHECK_AS(ValueError, std::isfinite(end_epoch) && end_epoch >= start_epoch, where,
                 ": end_epoch ", end_epoch, " comes before start_epoch ", start_epoch,
                 "; the schedule must end at or after it starts");
  STUNT_CHECK_AS(ValueError, std::isfinite(update_frequency), where, ": update_frequency ",
                 update_frequency, " is not a number");
  for (const auto& [name, value] :
       {std::pair<const char*, double>{"init_sparsity", init_sparsity},
        std::pair<const char*, double>{"final_sparsity", final_sparsity}}) {
    STUNT_CHECK_AS(ValueError, std::isfinite(value) && value >= 0 && value < 1, where, ": ", name,
                   " ", value, " is outside [0, 1); give the fraction of weights to prune");
  }
}

double GradualSchedule::sparsity_at(double epoch) const {
  return interpolate(epoch, start_epoch, end_epoch, init_sparsity, final_sparsity, interpolation);
}

bool GradualSchedule::update_due(double epoch, std::optional<double> last_update) const {
  const bool started = last_update.has_value();
  if (!started) return epoch >= start_epoch - kEpochTolerance;
  const bool ended = *last_update >= end_epoch - kEpochTolerance;
  if (ended) return false;
  if (epoch >= end_epoch - kEpochTolerance) return true;
  if (update_frequency <= 0) return epoch > *last_update;
  return epoch >= *last_update + update_frequency - kEpochTolerance;
}

bool MovementScores::accumulate(const at::Tensor& weight, const at::Tensor& grad) {
  STUNT_CHECK(grad.defined() && grad.sizes() == weight.sizes(),
              "movement scores need the weight's gradient (same shape), got ",
              grad.defined() ? grad.sizes() : at::IntArrayRef{});
  if (at::isnan(grad).any().item<bool>()) return false;
  const at::Tensor step = -(grad.detach() * weight.detach());
  if (!scores_.defined()) {
    scores_ = step.to(at::kFloat);
  } else {
    scores_.add_(step.to(at::kFloat));
  }
  return true;
}

at::Tensor lowest_scores_pruned(const at::Tensor& scores, double sparsity) {
  STUNT_CHECK(sparsity >= 0 && sparsity < 1, "lowest_scores_pruned: sparsity ", sparsity,
              " is outside [0, 1)");
  // Python's round(), as SparseML counts: half to even (the default rounding mode).
  const int64_t count =
      static_cast<int64_t>(std::nearbyint(static_cast<double>(scores.numel()) * sparsity));
  at::Tensor pruned = at::zeros({scores.numel()}, scores.options().dtype(at::kBool));
  if (count > 0) {
    // A stable ascending sort: ties go to the lower flat index.
    const at::Tensor order =
        std::get<1>(scores.to(at::kFloat).flatten().sort(std::optional<bool>(true), /*dim=*/0));
    pruned.index_fill_(0, order.narrow(0, 0, count), true);
  }
  return pruned.reshape(scores.sizes());
}

}  // namespace stunt::prune
