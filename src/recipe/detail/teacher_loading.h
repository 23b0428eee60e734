#pragma once
// Loading the teacher of a recipe's distillation modifiers (teacher_loading.cpp).

#include <filesystem>
#include <memory>

#include "stunt/model/hf_model.h"
#include "stunt/recipe/training.h"

namespace stunt::recipe::detail {

/// Whether the recipe's distillation modifiers need the teacher in memory: false when no train
/// stage distils, or when they learn from stored labels (--labels; a --teacher named beside them
/// must be the model that labelled them). A distilling recipe without a teacher, and a --teacher
/// or logit labels that no modifier reads, are refused here: call it before any work.
bool check_teacher(const Recipe& recipe, const TrainingRunOptions& training);

/// The teacher, loaded once, in inference mode.
std::unique_ptr<model::HfModel> load_teacher(const std::filesystem::path& path);

}  // namespace stunt::recipe::detail
