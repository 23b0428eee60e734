// The teacher of a recipe's distillation modifiers (recipe/training.h, TrainingRunOptions::teacher
// and ::labels): loaded once for in-memory distillation, or checked against stored labels.
#include <filesystem>
#include <optional>

#include "detail/distillation_modifiers.h"
#include "detail/teacher_loading.h"
#include "stunt/core/error.h"
#include "stunt/core/logging.h"
#include "stunt/core/strings.h"
#include "stunt/pseudolabel/label_set.h"
#include "stunt/pseudolabel/labeler.h"
#include "stunt/quant/compressed_tensors.h"

namespace stunt::recipe::detail {

bool check_teacher(const Recipe& recipe, const TrainingRunOptions& training) {
  const ModifierSpec* distiller = nullptr;
  for (const Stage& stage : recipe.stages) {
    if (!is_train_stage(stage)) continue;
    for (const ModifierSpec& spec : stage.modifiers) {
      if (is_distillation_modifier(spec.type) && distiller == nullptr) distiller = &spec;
    }
  }
  if (distiller == nullptr) {
    STUNT_CHECK_AS(ValueError, training.teacher.empty(), "--teacher ", training.teacher.string(),
                   ": no train stage of ", recipe.source,
                   " distils; add a DistillationModifier to a train stage, or leave out "
                   "--teacher");
    // Embeddings are the sentence-embedding task's targets; log-probabilities need the modifier.
    STUNT_CHECK_AS(
        ValueError,
        training.labels.empty() || pseudolabel::Manifest::read(training.labels).kind != "logits",
        "--labels ", training.labels.string(),
        ": the teacher's log-probabilities there are what a DistillationModifier "
        "learns from, and no train stage of ",
        recipe.source, " has one; add it, or train on text with --dataset");
    return false;
  }
  ModifierSpec located = *distiller;
  located.source = recipe.source;
  const std::optional<pseudolabel::Manifest> labels =
      training.labels.empty() ? std::nullopt
                              : std::optional(pseudolabel::Manifest::read(training.labels));
  const std::string kind = labels ? labels->kind : "";
  // Sequence-level and token-level together: the student learns the teacher's generations as
  // text, and the teacher, in memory, gives its distribution at every scored token of them.
  const bool generations_with_teacher = kind == "generate" && !training.teacher.empty();
  if (labels && !generations_with_teacher) {
    STUNT_CHECK_AS(RecipeError, kind == "logits", located.where(), ": ", located.type,
                   " learns from the teacher's log-probabilities (compress label --kind logits) "
                   "or from the teacher in memory (--teacher), and --labels ",
                   training.labels.string(), " holds labels of kind '", kind, "'",
                   kind == "generate"
                       ? "; a student learns generations as text (sequence-level distillation) "
                         "without it: remove the modifier, or name the teacher (--teacher) to "
                         "distil its distributions on the same tokens as well"
                       : "");
    // Labels stored at a temperature are distilled at that one (or were stored at 1).
    const double stored = labels->settings.value("logits_temperature", 1.0);
    const double temperature = located.reader().value("temperature", 2.0);
    STUNT_CHECK_AS(RecipeError, stored == 1.0 || stored == temperature, located.where(),
                   ".temperature is ", temperature, " but --labels ", training.labels.string(),
                   " holds the teacher's log-probabilities at temperature ", stored,
                   "; set temperature: ", stored,
                   ", or relabel with compress label "
                   "--logits-temperature ",
                   temperature, " (or 1)");
    // Offline: the teacher stays on disk. Named as well, it must be the one that labelled.
    if (!training.teacher.empty()) {
      STUNT_CHECK_AS(ValueError, std::filesystem::exists(training.teacher), "--teacher ",
                     training.teacher.string(), ": no such file or folder");
      const std::string recorded = labels->teacher.value("sha256", "");
      const std::string named = pseudolabel::model_content_hash(training.teacher);
      STUNT_CHECK_AS(ValueError, recorded == named, "--labels ", training.labels.string(),
                     ": labelled by ", labels->teacher.value("path", std::string("?")), " (sha256 ",
                     recorded.substr(0, 12), "), not by --teacher ", training.teacher.string(),
                     " (sha256 ", named.substr(0, 12),
                     "); relabel with this teacher, or name the one that labelled");
      log::info("teacher: ", training.teacher.string(), " labelled ", training.labels.string(),
                "; it is not loaded (offline distillation)");
    }
    return false;
  }
  STUNT_CHECK_AS(RecipeError, !training.teacher.empty(), located.where(), ": ", located.type,
                 " trains the student on a teacher's outputs; name the teacher with --teacher "
                 "MODEL (a Hugging Face folder or GGUF file)");
  STUNT_CHECK_AS(ValueError, std::filesystem::exists(training.teacher), "--teacher ",
                 training.teacher.string(),
                 ": no such file or folder; give the teacher's Hugging Face folder or GGUF file");
  return true;
}

std::unique_ptr<model::HfModel> load_teacher(const std::filesystem::path& path) {
  log::info("teacher: loading ", path.string());
  std::unique_ptr<model::HfModel> teacher = quant::load_model(path);
  teacher->set_training(false);
  return teacher;
}

}  // namespace stunt::recipe::detail
