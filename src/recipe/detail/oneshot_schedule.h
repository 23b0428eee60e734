#pragma once
// The schedule fields every modifier may carry (llm-compressor's start / end / update, SparseML's
// start_epoch / end_epoch / update_frequency), read for a one-shot run.

#include "stunt/recipe/recipe.h"

namespace stunt::recipe::detail {

/// Throws NotImplementedError naming the recipe path when `spec` schedules its work inside a
/// training run (llm-compressor: start, end or update of 0 or more; SparseML: a start_epoch
/// after 0) in a stage that runs one-shot (run_type: oneshot; without a run_type such a stage
/// trains, see training.h). One-shot values pass: absent, null, or negative (-1 is
/// llm-compressor's and SparseML's "one-shot").
void check_oneshot_schedule(const ModifierSpec& spec);

}  // namespace stunt::recipe::detail
