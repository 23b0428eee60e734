#pragma once
// Factories of the distillation modifiers' training forms (distillation_modifier.cpp).

#include <memory>

#include "stunt/recipe/training.h"

namespace stunt::recipe::detail {

/// SparseML's DistillationModifier: the student's logits learn the teacher's (State::teacher),
/// mixed with the task loss by hardness.
std::unique_ptr<TrainingModifier> make_logit_distillation(const ModifierSpec& spec);

}  // namespace stunt::recipe::detail
