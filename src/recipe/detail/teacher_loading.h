#pragma once
// Loading the teacher of a recipe's distillation modifiers (teacher_loading.cpp).

#include <memory>

#include "stunt/model/hf_model.h"
#include "stunt/recipe/training.h"

namespace stunt::recipe::detail {

/// The teacher of the recipe's distillation modifiers, loaded once in inference mode; null when
/// no train stage distils, or when it learns from stored labels (--labels; a --teacher named
/// beside them must be the model that labelled them). A distilling recipe without a teacher,
/// and a --teacher or logit labels that no modifier reads, are refused before any work.
std::unique_ptr<model::HfModel> load_teacher(const Recipe& recipe,
                                             const TrainingRunOptions& training);

}  // namespace stunt::recipe::detail
