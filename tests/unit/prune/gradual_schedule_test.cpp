// Gradual pruning schedules: SparseML's interpolate() and epoch counting (TRAINING.md), when
// masks update, and movement scores against their formula.
#include "stunt/prune/gradual_schedule.h"

#include <ATen/ATen.h>

#include <cmath>
#include <vector>

#include "stunt/core/error.h"
#include "test_util.h"

namespace stunt::prune {
namespace {

/// The sparsity after each optimizer step of a run, at the updates `schedule` makes; -1 where
/// the step makes none. Index 0 is the evaluation before the first step.
std::vector<double> run_schedule(const GradualSchedule& schedule, int64_t steps,
                                 int64_t steps_per_epoch) {
  std::vector<double> applied;
  std::optional<double> last_update;
  for (int64_t k = 0; k <= steps; ++k) {
    const double epoch = epoch_after_steps(k, steps_per_epoch);
    if (schedule.update_due(epoch, last_update)) {
      applied.push_back(schedule.sparsity_at(epoch));
      last_update = epoch;
    } else {
      applied.push_back(-1);
    }
  }
  return applied;
}

TEST(Interpolate, FollowsZhuAndGuptasCurves) {
  // Halfway from 0.05 to 0.85 between epochs 1 and 3.
  EXPECT_DOUBLE_EQ(interpolate(2, 1, 3, 0.05, 0.85, Interpolation::Linear), 0.45);
  EXPECT_DOUBLE_EQ(interpolate(2, 1, 3, 0.05, 0.85, Interpolation::Cubic),
                   0.875 * (0.85 - 0.05) + 0.05);
  EXPECT_DOUBLE_EQ(interpolate(2, 1, 3, 0.05, 0.85, Interpolation::InverseCubic),
                   (1 - std::pow(0.5, 1.0 / 3.0)) * (0.85 - 0.05) + 0.05);
  // The ends are exact, and so is everything outside them.
  for (Interpolation f :
       {Interpolation::Linear, Interpolation::Cubic, Interpolation::InverseCubic}) {
    EXPECT_EQ(interpolate(1, 1, 3, 0.05, 0.85, f), 0.05) << to_string(f);
    EXPECT_EQ(interpolate(0.5, 1, 3, 0.05, 0.85, f), 0.05) << to_string(f);
    EXPECT_EQ(interpolate(3, 1, 3, 0.05, 0.85, f), 0.85) << to_string(f);
    EXPECT_EQ(interpolate(3.25, 1, 3, 0.05, 0.85, f), 0.85) << to_string(f);
  }
  // A schedule that starts and ends together jumps.
  EXPECT_EQ(interpolate(2, 2, 2, 0.0, 0.5, Interpolation::Cubic), 0.5);
  EXPECT_EQ(interpolate(1.9, 2, 2, 0.0, 0.5, Interpolation::Cubic), 0.0);
}

TEST(EpochAfterSteps, CountsWholeEpochsAndTheFractionOfTheCurrentOne) {
  EXPECT_EQ(epoch_after_steps(0, 7), 0.0);
  EXPECT_EQ(epoch_after_steps(7, 7), 1.0);
  EXPECT_DOUBLE_EQ(epoch_after_steps(10, 4), 2.5);
  EXPECT_THROW_WITH(epoch_after_steps(1, 0), Error, "steps per epoch > 0");
}

TEST(GradualSchedule, UpdatesOnAGridWithoutDriftAndEndsOnTheLastStep) {
  // SparseML compares 0.2 + 0.1 >= 0.3 exactly and so updates at steps 0, 10, 20, 31, 42, ...;
  // Stunt keeps the grid.
  GradualSchedule s{.start_epoch = 0,
                    .end_epoch = 1,
                    .update_frequency = 0.1,
                    .init_sparsity = 0.05,
                    .final_sparsity = 0.8};
  const std::vector<double> applied = run_schedule(s, 100, 100);
  std::vector<int64_t> update_steps;
  for (size_t k = 0; k < applied.size(); ++k) {
    if (applied[k] >= 0) update_steps.push_back(static_cast<int64_t>(k));
  }
  EXPECT_EQ(update_steps, (std::vector<int64_t>{0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100}));
  for (int64_t k : update_steps) {
    const double x = k / 100.0;
    const double expected =
        k == 100 ? 0.8 : (k == 0 ? 0.05 : (1 - std::pow(1 - x, 3)) * 0.75 + 0.05);
    EXPECT_DOUBLE_EQ(applied[k], expected) << "step " << k;
  }
  // The run ends at epoch 1 = end_epoch: the final sparsity is reached on the last step.
  EXPECT_EQ(applied.back(), 0.8);
}

TEST(GradualSchedule, FrequenciesThatSplitStepsUpdateAtTheNextStep) {
  // 7 steps per epoch, every half epoch: the first step at or past each half.
  GradualSchedule s{.start_epoch = 1,
                    .end_epoch = 3,
                    .update_frequency = 0.5,
                    .init_sparsity = 0.0,
                    .final_sparsity = 0.5,
                    .interpolation = Interpolation::Linear};
  const std::vector<double> applied = run_schedule(s, 28, 7);
  std::vector<int64_t> update_steps;
  for (size_t k = 0; k < applied.size(); ++k) {
    if (applied[k] >= 0) update_steps.push_back(static_cast<int64_t>(k));
  }
  // Epoch 1 at step 7; then 7 + 4 (11/7 >= 1.5), 15 (15/7 >= 11/7 + 0.5), 19, and the end at 21.
  EXPECT_EQ(update_steps, (std::vector<int64_t>{7, 11, 15, 19, 21}));
  EXPECT_EQ(applied[7], 0.0);
  EXPECT_DOUBLE_EQ(applied[11], (11.0 / 7 - 1) / 2 * 0.5);
  EXPECT_EQ(applied[21], 0.5);
}

TEST(GradualSchedule, EveryStepWhenTheFrequencyIsNotPositive) {
  GradualSchedule s{.start_epoch = 0,
                    .end_epoch = 1,
                    .update_frequency = -1,
                    .init_sparsity = 0.0,
                    .final_sparsity = 0.5};
  const std::vector<double> applied = run_schedule(s, 6, 4);
  for (size_t k = 0; k <= 4; ++k) EXPECT_GE(applied[k], 0) << k;
  EXPECT_EQ(applied[5], -1);  // after the end: no more updates
}

TEST(GradualSchedule, RefusesBadSchedulesNamingTheField) {
  const std::string where = "stages.train.GMPruningModifier";
  EXPECT_THROW_WITH((GradualSchedule{.start_epoch = 3, .end_epoch = 1}.validate(where)), ValueError,
                    "end_epoch 1 comes before start_epoch 3");
  EXPECT_THROW_WITH((GradualSchedule{.end_epoch = 1, .final_sparsity = 1.0}.validate(where)),
                    ValueError, "final_sparsity 1 is outside [0, 1)");
  EXPECT_THROW_WITH((GradualSchedule{.end_epoch = 1, .init_sparsity = -0.1}.validate(where)),
                    ValueError, "stages.train.GMPruningModifier: init_sparsity");
  EXPECT_THROW_WITH(parse_interpolation("quadratic", where), ValueError,
                    "use linear, cubic (the default) or inverse_cubic");
}

TEST(MovementScores, AccumulateMinusGradientTimesWeight) {
  at::manual_seed(0);
  const at::Tensor w1 = at::randn({4, 6}), g1 = at::randn({4, 6});
  const at::Tensor w2 = at::randn({4, 6}), g2 = at::randn({4, 6});
  MovementScores scores;
  EXPECT_TRUE(scores.accumulate(w1, g1));
  EXPECT_TRUE(scores.accumulate(w2, g2));
  EXPECT_TRUE(at::allclose(scores.scores(), -(g1 * w1) - (g2 * w2)));
  at::Tensor bad = g1.clone();
  bad[0][0] = NAN;
  EXPECT_FALSE(scores.accumulate(w1, bad));
  EXPECT_TRUE(at::allclose(scores.scores(), -(g1 * w1) - (g2 * w2)));
}

TEST(LowestScoresPruned, CountsAsPythonRoundsAndPrunesTheLowest) {
  // 10 * 0.25 = 2.5 rounds to 2 (half to even), as SparseML's round() does.
  const at::Tensor scores = at::tensor({5.f, -1.f, 3.f, 0.f, 9.f, -7.f, 2.f, 8.f, 1.f, 4.f});
  const at::Tensor pruned = lowest_scores_pruned(scores, 0.25);
  EXPECT_EQ(pruned.sum().item<int64_t>(), 2);
  EXPECT_TRUE(pruned[5].item<bool>());
  EXPECT_TRUE(pruned[1].item<bool>());
  EXPECT_EQ(lowest_scores_pruned(scores, 0.35).sum().item<int64_t>(), 4);  // 3.5 -> 4
  EXPECT_EQ(lowest_scores_pruned(scores, 0.0).sum().item<int64_t>(), 0);
}

}  // namespace
}  // namespace stunt::prune
