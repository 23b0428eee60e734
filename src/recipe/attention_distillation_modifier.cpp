// Attention distillation in train stages (a Stunt modifier; neither SparseML nor llm-compressor
// has one): the student's self-attention learns the teacher's (State::teacher, in inference
// mode), head by head:
//   loss = task + gain · Σ_pairs L(student block, teacher block)
// with L = TinyBERT's mean squared error of the attention maps (`loss: tinybert`), or MiniLM's
// KL of the attention distributions plus KL of the value relations (`loss: minilm`, by default
// on the last block of each stack only, as MiniLM distils). Block pairs follow how the recipe
// built the student (State::kept_blocks) unless `targets` names them, as
// OutputDistillationModifier's targets do. Padding tokens are left out of every term.
#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "detail/block_pairs.h"
#include "detail/common_args.h"
#include "detail/distillation_modifiers.h"
#include "detail/teacher_forward.h"
#include "stunt/core/error.h"
#include "stunt/core/strings.h"
#include "stunt/distill/attention_loss.h"
#include "stunt/model/hf_model.h"

namespace stunt::recipe::detail {
namespace {

enum class AttentionLoss { TinyBert, MiniLm };

class AttentionDistillation final : public TrainingModifier, public train::TrainingCallbacks {
 public:
  explicit AttentionDistillation(const ModifierSpec& spec) : TrainingModifier(spec) {
    const ArgReader a = this->spec().reader();
    const std::string& where = this->spec().where();
    const std::string loss = a.value("loss", std::string("minilm"));
    loss_ = loss == "tinybert" ? AttentionLoss::TinyBert : AttentionLoss::MiniLm;
    gain_ = a.value("gain", 1.0);
    if (a.has("start_epoch")) start_epoch_ = a["start_epoch"].get<double>();
    if (a.has("end_epoch")) end_epoch_ = a["end_epoch"].get<double>();
    a.contains("update_frequency");  // the loss is added at every step
    // Without targets, resolve() picks the default blocks.
    if (a.has("targets")) entries_ = read_target_entries(a["targets"], where);
  }

  void resolve(State& state) override {
    const std::string& where = spec().where();
    STUNT_CHECK_AS(RecipeError, state.teacher != nullptr, where, ": ", spec().type,
                   " compares the student's attention with the teacher's, which needs the "
                   "teacher in memory: name it with --teacher MODEL, or SessionOptions::teacher in "
                   "your own loop (stored labels hold no attention)");
    const auto* student = dynamic_cast<const model::HfModel*>(state.model);
    const auto* teacher = dynamic_cast<const model::HfModel*>(state.teacher);
    STUNT_CHECK_AS(ValueError, student != nullptr && teacher != nullptr, where, ": ", spec().type,
                   " names blocks of Hugging Face models; this student or teacher is another kind");
    check_same_vocabulary(*student, *teacher, where,
                          "the teacher runs on the student's token ids, so both need one "
                          "tokenizer");
    std::vector<TargetEntry> entries = entries_;
    if (entries.empty() && loss_ == AttentionLoss::TinyBert) {
      entries.push_back({"re:.*", "re:.*", false});  // every block, as TinyBERT maps them
    } else if (entries.empty()) {
      entries = last_blocks(*student, *teacher);  // MiniLM distils the last layer only
    }
    pairs_ = resolve_block_pairs(entries, *student, *teacher, state, where);
    teacher_ = state.teacher;
    teacher_->set_keep_attentions(true);
    teacher_forward_ = join_teacher_forward(state);
    state.model->set_keep_attentions(true);
  }

  std::vector<train::TrainingCallbacks*> callbacks() override { return {this}; }
  std::string name() const override { return spec().path; }

  void on_loss(const train::StepInfo& info, const train::TrainingBatch& batch,
               const model::Output& output, at::Tensor& loss) override {
    active_ = info.epoch >= start_epoch_ && !(end_epoch_ >= 0 && info.epoch >= end_epoch_);
    if (!active_) return;
    const std::string& where = spec().where();
    STUNT_CHECK_AS(InternalError, !output.attentions.empty(), where,
                   ": the student's forward kept no attention");
    const std::vector<model::AttentionRecord> teacher_attentions =
        (*teacher_forward_)(batch.inputs, info.step).attentions;
    const at::Tensor& keep = batch.inputs.attention_mask;
    at::Tensor total;
    for (const BlockPair& pair : pairs_) {
      const model::AttentionRecord& s = output.attentions.at(static_cast<size_t>(pair.student));
      const model::AttentionRecord& t = teacher_attentions.at(static_cast<size_t>(pair.teacher));
      at::Tensor term;
      try {
        term =
            loss_ == AttentionLoss::TinyBert
                ? distill::attention_map_mse(s.probabilities, t.probabilities, keep)
                : distill::minilm_loss(s.probabilities, t.probabilities, s.values, t.values, keep);
      } catch (const ValueError& e) {
        throw ValueError(str(where, ": student block ", pair.student_name, " and teacher block ",
                             pair.teacher_name, ": ", e.what()));
      }
      total = total.defined() ? total + term : term;
    }
    task_loss_ = loss.item<double>();
    attention_loss_ = total.item<double>();
    loss = loss + total * gain_;
  }

  void metrics(std::map<std::string, double>& out) const override {
    if (!active_) return;
    out["task_loss"] = task_loss_;
    out["attention_loss"] = attention_loss_;
  }

  void finish(State& state) override {
    state.model->set_keep_attentions(false);
    if (teacher_ != nullptr) teacher_->set_keep_attentions(false);
    if (teacher_forward_ != nullptr) teacher_forward_->remove_reader();
    teacher_forward_ = nullptr;
  }

 private:
  /// The last block of each of the student's stacks, paired with the last of the teacher's stack
  /// of the same name.
  static std::vector<TargetEntry> last_blocks(const model::HfModel& student,
                                              const model::HfModel& teacher) {
    std::map<std::string, std::string> last_of_teacher;
    for (const NamedBlock& b : named_blocks(teacher)) last_of_teacher[b.stack_prefix] = b.name;
    std::map<std::string, std::string> last_of_student;
    for (const NamedBlock& b : named_blocks(student)) last_of_student[b.stack_prefix] = b.name;
    std::vector<TargetEntry> out;
    for (const auto& [prefix, name] : last_of_student) {
      const auto t = last_of_teacher.find(prefix);
      if (t != last_of_teacher.end()) out.push_back({name, t->second, true});
    }
    return out;
  }

  AttentionLoss loss_ = AttentionLoss::MiniLm;
  double gain_ = 1.0;
  double start_epoch_ = -1.0;
  double end_epoch_ = -1.0;
  std::vector<TargetEntry> entries_;
  std::vector<BlockPair> pairs_;
  model::Model* teacher_ = nullptr;
  std::shared_ptr<TeacherForward> teacher_forward_;
  bool active_ = false;
  double task_loss_ = 0.0;
  double attention_loss_ = 0.0;
};

}  // namespace

std::unique_ptr<TrainingModifier> make_attention_distillation(const ModifierSpec& spec) {
  return std::make_unique<AttentionDistillation>(spec);
}

}  // namespace stunt::recipe::detail
