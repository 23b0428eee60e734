// SparseML's DistillationModifier in a train stage: the teacher (loaded once by run_recipe, in
// inference mode) runs on every batch the student trains on, and the step's loss becomes
//     (1 - hardness) · task loss + hardness · KL(teacher ‖ student at temperature T) · T²
// between start_epoch and end_epoch, the task loss alone outside them (SparseML's behaviour).
#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <optional>
#include <string>

#include "detail/distillation_modifiers.h"
#include "detail/teacher_forward.h"
#include "stunt/core/error.h"
#include "stunt/core/strings.h"
#include "stunt/distill/logit_distillation.h"
#include "stunt/model/hf_model.h"

namespace stunt::recipe::detail {
namespace {

/// The positions a task scores, shaped like `logits` without the vocabulary: where the labels
/// are not -100 (causal LM windows, seq2seq targets) or, failing that, where the attention mask
/// is set; undefined (all positions) when neither has the logits' shape.
at::Tensor scored_positions(const train::TrainingBatch& batch, const at::Tensor& logits) {
  const auto leading = logits.sizes().slice(0, logits.dim() - 1);
  if (batch.labels.defined() && batch.labels.sizes() == leading &&
      !at::isFloatingType(batch.labels.scalar_type())) {
    return batch.labels != -100;
  }
  const at::Tensor& mask = batch.inputs.attention_mask;
  if (mask.defined() && mask.sizes() == leading) return mask != 0;
  return {};
}

class LogitDistillation final : public TrainingModifier, public train::TrainingCallbacks {
 public:
  explicit LogitDistillation(const ModifierSpec& spec) : TrainingModifier(spec) {
    const ArgReader a = this->spec().reader();
    const std::string& where = this->spec().where();
    hardness_ = a.value("hardness", 0.5);
    temperature_ = a.value("temperature", 2.0);
    if (a.has("start_epoch")) start_epoch_ = a["start_epoch"].get<double>();
    if (a.has("end_epoch")) end_epoch_ = a["end_epoch"].get<double>();
    // SparseML reads update_frequency for every modifier; distillation acts on every step.
    a.contains("update_frequency");
    if (a.has("distill_output_keys")) {
      for (const Value& key : a["distill_output_keys"]) {
        const bool logits = (key.is_string() && key.get<std::string>() == "logits") ||
                            (key.is_number_integer() && key.get<int64_t>() == 0);
        STUNT_CHECK_AS(NotImplementedError, logits, where, ".distill_output_keys: ", key.dump(),
                       " is not an output Stunt distils; the student learns the teacher's "
                       "logits (key 'logits' or index 0). Hidden states: "
                       "OutputDistillationModifier");
      }
    }
    if (a.has("teacher_input_keys")) {
      for (const Value& key : a["teacher_input_keys"]) {
        const std::string name = key.is_string() ? key.get<std::string>() : key.dump();
        STUNT_CHECK_AS(NotImplementedError,
                       name == "input_ids" || name == "attention_mask" ||
                           name == "token_type_ids" || name == "decoder_input_ids",
                       where, ".teacher_input_keys: '", name,
                       "': the teacher reads the student's batch (input_ids, attention_mask, "
                       "token_type_ids, decoder_input_ids); other inputs are not implemented");
      }
    }
  }

  void resolve(State& state) override {
    const std::string& where = spec().where();
    STUNT_CHECK_AS(RecipeError, state.teacher != nullptr || state.stored_teacher, where, ": ",
                   spec().type,
                   " trains the student on a teacher's outputs; name the teacher with --teacher "
                   "MODEL (a Hugging Face folder or GGUF file), or give its stored "
                   "log-probabilities with --labels (in your own loop: SessionOptions::teacher)");
    teacher_ = state.teacher;
    if (teacher_ == nullptr) return;
    check_same_vocabulary(*state.model, *teacher_, where,
                          "logit distillation compares distributions over one vocabulary");
    teacher_forward_ = join_teacher_forward(state);
  }

  std::vector<train::TrainingCallbacks*> callbacks() override { return {this}; }

  std::string name() const override { return spec().path; }

  void finish(State& state) override {
    if (teacher_forward_ != nullptr) teacher_forward_->remove_reader();
    teacher_forward_ = nullptr;
  }

  void on_loss(const train::StepInfo& info, const train::TrainingBatch& batch,
               const model::Output& output, at::Tensor& loss) override {
    if (info.epoch < start_epoch_ || (end_epoch_ >= 0 && info.epoch >= end_epoch_)) {
      active_ = false;
      return;
    }
    active_ = true;
    const std::string& where = spec().where();
    STUNT_CHECK_AS(ValueError, output.logits.defined(), where, ": ", spec().type,
                   " distils logits, and this task's model gives none (a sentence-embedding "
                   "encoder); train it on the teacher's embeddings instead (compress label "
                   "--kind embed, then --labels)");
    if (batch.teacher.top_ids.defined()) {
      // Offline: the teacher's stored top-k (compress label --kind logits).
      // compress refuses this before training (recipe/teacher_loading.cpp); a library caller
      // with its own data meets it here.
      STUNT_CHECK_AS(RecipeError,
                     batch.teacher.temperature == 1.0 || batch.teacher.temperature == temperature_,
                     where, ".temperature is ", temperature_, " but the labels were stored at ",
                     batch.teacher.temperature);
      const at::Tensor distill = distill::top_k_distillation_loss(
          output.logits, batch.teacher.top_ids, batch.teacher.top_log_probs, temperature_,
          batch.teacher.scored, batch.teacher.temperature);
      mix(loss, distill);
      return;
    }
    STUNT_CHECK_AS(InternalError, teacher_ != nullptr, where, ": no teacher and no stored labels");
    const at::Tensor teacher_logits = (*teacher_forward_)(batch.inputs, info.step).logits;
    STUNT_CHECK_AS(ValueError, teacher_logits.defined(), where,
                   ": the teacher gives no logits; logit distillation needs a teacher with the "
                   "student's head (a language model, or a classifier)");
    STUNT_CHECK_AS(RecipeError, teacher_logits.sizes() == output.logits.sizes(), where,
                   ": the teacher's logits are ", teacher_logits.sizes(), " and the student's ",
                   output.logits.sizes(),
                   " on the same batch; logit distillation needs the same vocabulary (or classes) "
                   "in both");
    mix(loss, distill::logit_distillation_loss(output.logits, teacher_logits, temperature_,
                                               scored_positions(batch, output.logits)));
  }

  /// SparseML's mix of the task loss and the distillation term.
  void mix(at::Tensor& loss, const at::Tensor& distill) {
    task_loss_ = loss.item<double>();
    distill_loss_ = distill.item<double>();
    loss = loss * (1.0 - hardness_) + distill * hardness_;
  }

  void metrics(std::map<std::string, double>& out) const override {
    if (!active_) return;
    out["task_loss"] = task_loss_;
    out["distill_loss"] = distill_loss_;
  }

 private:
  double hardness_ = 0.5;
  double temperature_ = 2.0;
  double start_epoch_ = -1.0;
  double end_epoch_ = -1.0;
  model::Model* teacher_ = nullptr;
  std::shared_ptr<TeacherForward> teacher_forward_;
  bool active_ = false;
  double task_loss_ = 0.0;
  double distill_loss_ = 0.0;
};

}  // namespace

bool is_distillation_modifier(const std::string& type) {
  return type == "DistillationModifier" || type == "PerLayerDistillationModifier" ||
         type == "OutputDistillationModifier" || type == "AttentionDistillationModifier";
}

void check_same_vocabulary(const model::Model& student, const model::Model& teacher,
                           const std::string& where, const char* why) {
  const auto* s = dynamic_cast<const model::HfModel*>(&student);
  const auto* t = dynamic_cast<const model::HfModel*>(&teacher);
  if (s == nullptr || t == nullptr || !s->config().has("vocab_size") ||
      !t->config().has("vocab_size")) {
    return;
  }
  const int64_t sv = s->config().integer("vocab_size");
  const int64_t tv = t->config().integer("vocab_size");
  STUNT_CHECK_AS(RecipeError, sv == tv, where, ": the teacher's vocabulary has ", tv,
                 " tokens and the student's ", sv, "; ", why,
                 ". Use a teacher with the student's tokenizer, or train on the teacher's "
                 "generations (compress label --kind generate, then --labels)");
}

std::unique_ptr<TrainingModifier> make_logit_distillation(const ModifierSpec& spec) {
  return std::make_unique<LogitDistillation>(spec);
}

}  // namespace stunt::recipe::detail
