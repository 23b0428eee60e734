// Hidden-state distillation in train stages: the outputs of the student's transformer blocks
// learn the outputs of the teacher's (State::teacher, in inference mode), as
//   SparseML's PerLayerDistillationModifier:
//     loss = task + gain · Σ_pairs mean((P·s − t)²) [/ (mean(t²) + epsilon) when normalize]
//     over every position, P a learned projection (project_features) or none;
//   llm-compressor's OutputDistillationModifier:
//     loss = orig_scale · task + distill_scale · mean_pairs comparison(s, t)
//     over the non-padding positions (distill_scale defaults to the number of pairs for
//     square_head, as llm-compressor scales it).
// Blocks are named as checkpoints name them ("model.layers.3", "bert.encoder.layer.2"). A student
// built from the teacher by the recipe's LayerPruningModifier learns, in its block i, the
// teacher block it was copied from (State::kept_blocks), unless the recipe pairs the names.
#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <cmath>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "detail/block_pairs.h"
#include "detail/common_args.h"
#include "detail/distillation_modifiers.h"
#include "detail/teacher_forward.h"
#include "stunt/core/error.h"
#include "stunt/core/strings.h"
#include "stunt/distill/hidden_state_loss.h"
#include "stunt/model/architecture.h"
#include "stunt/model/hf_model.h"

namespace stunt::recipe::detail {
namespace {

/// The width of a model's hidden state, from its config.
int64_t hidden_width(const model::HfModel& m, const std::string& where) {
  for (const char* key : {"hidden_size", "d_model", "n_embd"}) {
    if (m.config().has(key)) return m.config().integer(key);
  }
  throw ValueError(str(where, ": ", m.architecture(),
                       "'s config gives no hidden_size; hidden-state distillation needs it"));
}

class HiddenStateDistillation final : public TrainingModifier, public train::TrainingCallbacks {
 public:
  HiddenStateDistillation(const ModifierSpec& spec, bool sparseml) : TrainingModifier(spec) {
    sparseml_ = sparseml;
    const ArgReader a = this->spec().reader();
    const std::string& where = this->spec().where();
    if (sparseml) {
      read_sparseml(a, where);
    } else {
      read_llmcompressor(a, where);
    }
  }

  void resolve(State& state) override {
    const std::string& where = spec().where();
    STUNT_CHECK_AS(RecipeError, state.teacher != nullptr, where, ": ", spec().type,
                   " compares the student's hidden states with the teacher's, which needs the "
                   "teacher in memory: name it with --teacher MODEL, or SessionOptions::teacher in "
                   "your own loop (stored labels hold only its log-probabilities or embeddings)");
    const auto* student = dynamic_cast<const model::HfModel*>(state.model);
    const auto* teacher = dynamic_cast<const model::HfModel*>(state.teacher);
    STUNT_CHECK_AS(ValueError, student != nullptr && teacher != nullptr, where, ": ", spec().type,
                   " names blocks of Hugging Face models; this student or teacher is another kind");
    check_same_vocabulary(*student, *teacher, where,
                          "the teacher runs on the student's token ids, so both need one "
                          "tokenizer");
    student_width_ = hidden_width(*student, where);
    teacher_width_ = hidden_width(*teacher, where);
    STUNT_CHECK_AS(ValueError, project_ || student_width_ == teacher_width_, where,
                   ": the student's "
                   "hidden states have ",
                   student_width_, " features and the teacher's ", teacher_width_,
                   "; comparing them needs a projection",
                   sparseml_ ? " (project_features: true)"
                             : " (not implemented for OutputDistillationModifier: use SparseML's "
                               "PerLayerDistillationModifier with project_features: true)");
    pairs_ = resolve_block_pairs(entries_, *student, *teacher, state, where);
    teacher_ = state.teacher;
    teacher_->set_keep_block_outputs(true);
    teacher_forward_ = join_teacher_forward(state);
    state.model->set_keep_block_outputs(true);
    if (!sparseml_ && comparison_ == distill::HiddenComparison::SquareHead && !distill_scale_set_) {
      // llm-compressor: square_head's default scale is the number of compared layers.
      distill_scale_ = static_cast<double>(pairs_.size());
    }
  }

  void configure(train::TrainerOptions& options) override {
    if (!project_) return;
    // torch.nn.Linear's initialisation, U(−1/√in, 1/√in), from the run's seed: a fresh run and
    // its resume start from the same projections (the checkpoint then holds their training).
    at::Generator generator = at::detail::createCPUGenerator(options.seed + 0x5eed);
    const double bound = 1.0 / std::sqrt(static_cast<double>(student_width_));
    projections_.clear();
    for (const BlockPair& p : pairs_) {
      at::Tensor weight = at::empty({teacher_width_, student_width_}, at::kFloat);
      weight.uniform_(-bound, bound, generator);
      weight.requires_grad_(true);
      projections_.emplace_back(str(spec().path, ".projection.", p.student_name), weight);
    }
  }

  std::vector<train::TrainingCallbacks*> callbacks() override { return {this}; }
  std::string name() const override { return spec().path; }
  std::vector<std::pair<std::string, at::Tensor>> parameters() override { return projections_; }

  void on_loss(const train::StepInfo& info, const train::TrainingBatch& batch,
               const model::Output& output, at::Tensor& loss) override {
    active_ = info.epoch >= start_epoch_ && !(end_epoch_ >= 0 && info.epoch >= end_epoch_);
    if (!active_) return;
    const std::string& where = spec().where();
    STUNT_CHECK_AS(InternalError, !output.block_outputs.empty(), where,
                   ": the student's forward kept no block outputs");
    const std::vector<at::Tensor> teacher_blocks =
        (*teacher_forward_)(batch.inputs, info.step).block_outputs;
    const at::Tensor& mask = batch.inputs.attention_mask;
    at::Tensor keep;
    if (!sparseml_ && mask.defined()) keep = mask != 0;  // llm-compressor: non-padding tokens
    at::Tensor total;
    for (size_t i = 0; i < pairs_.size(); ++i) {
      at::Tensor s = output.block_outputs.at(static_cast<size_t>(pairs_[i].student));
      const at::Tensor t = teacher_blocks.at(static_cast<size_t>(pairs_[i].teacher));
      if (project_) s = at::matmul(s.to(at::kFloat), projections_[i].second.t());
      STUNT_CHECK_AS(ValueError, s.sizes() == t.sizes(), where, ": student block ",
                     pairs_[i].student_name, " gives ", s.sizes(), " and teacher block ",
                     pairs_[i].teacher_name, " ", t.sizes(), " on the same batch");
      const at::Tensor term = distill::hidden_state_loss(s, t, comparison_, keep, epsilon_);
      total = total.defined() ? total + term : term;
    }
    if (!sparseml_) total = total / static_cast<double>(pairs_.size());
    task_loss_ = loss.item<double>();
    hidden_loss_ = total.item<double>();
    loss = sparseml_ ? loss + total * gain_ : loss * orig_scale_ + total * distill_scale_;
  }

  void metrics(std::map<std::string, double>& out) const override {
    if (!active_) return;
    out["task_loss"] = task_loss_;
    out["hidden_loss"] = hidden_loss_;
  }

  void finish(State& state) override {
    state.model->set_keep_block_outputs(false);
    if (teacher_ != nullptr) teacher_->set_keep_block_outputs(false);
    if (teacher_forward_ != nullptr) teacher_forward_->remove_reader();
    teacher_forward_ = nullptr;
  }

 private:
  void read_sparseml(const ArgReader& a, const std::string& where) {
    gain_ = a.value("gain", 1.5);
    const bool normalize = a.value("normalize", true);
    comparison_ =
        normalize ? distill::HiddenComparison::NormalizedMse : distill::HiddenComparison::Mse;
    project_ = a.value("project_features", true);
    epsilon_ = a.value("epsilon", 1e-6);
    if (a.has("start_epoch")) start_epoch_ = a["start_epoch"].get<double>();
    if (a.has("end_epoch")) end_epoch_ = a["end_epoch"].get<double>();
    a.contains("update_frequency");  // the loss is added at every step
    std::vector<std::string> students, teachers;
    if (a.has("student_layer_names")) students = string_list(a["student_layer_names"]);
    if (a.has("teacher_layer_names")) teachers = string_list(a["teacher_layer_names"]);
    if (!students.empty() && !teachers.empty()) {
      STUNT_CHECK_AS(RecipeError, students.size() == teachers.size(), where,
                     ": student_layer_names has ", students.size(),
                     " names and teacher_layer_names ", teachers.size(),
                     "; the i-th of each are paired, so give as many");
      for (size_t i = 0; i < students.size(); ++i) {
        entries_.push_back({students[i], teachers[i], true});
      }
      return;
    }
    // One list: the same names on both sides (SparseML), mapped through how the student was
    // built. Neither: every block of the student.
    for (const std::string& name : students.empty() ? teachers : students) {
      entries_.push_back({name, name, false});
    }
    if (entries_.empty()) entries_.push_back({"re:.*", "re:.*", false});
  }

  void read_llmcompressor(const ArgReader& a, const std::string& where) {
    const std::string comparison = a.value("comparison", std::string("kl_divergence"));
    STUNT_CHECK_AS(
        NotImplementedError,
        comparison == "square_head" || comparison == "mse" || comparison == "normalized_mse" ||
            comparison == "cosine",
        where, ".comparison: '", comparison,
        "' is not implemented: llm-compressor's kl_divergence, l2_distance, inner_product, "
        "cosine_similarity and cross_entropy compare raw hidden states in ways that do not make a "
        "loss (cosine_similarity grows as the states align). Use square_head (as llm-compressor's "
        "examples do), mse, normalized_mse or cosine (1 - cosine similarity)");
    comparison_ = distill::parse_hidden_comparison(comparison, where + ".comparison");
    epsilon_ = 0.0;  // llm-compressor's square_head divides by Σt² as it is
    orig_scale_ = a.value("orig_scale", 1.0);
    if (a.has("distill_scale")) {
      distill_scale_ = a["distill_scale"].get<double>();
      // llm-compressor replaces a distill_scale of exactly 1.0 too.
      distill_scale_set_ = distill_scale_ != 1.0;
    }
    if (a.has("start") && a["start"].get<double>() >= 0) start_epoch_ = a["start"].get<double>();
    if (a.has("end") && a["end"].get<double>() >= 0) end_epoch_ = a["end"].get<double>();
    a.contains("update");
    STUNT_CHECK_AS(NotImplementedError, !a.has("projection"), where,
                   ".projection: learned projections are not implemented for "
                   "OutputDistillationModifier; use SparseML's PerLayerDistillationModifier with "
                   "project_features: true");
    STUNT_CHECK_AS(NotImplementedError, !a.has("projection_args") || a["projection_args"].empty(),
                   where, ".projection_args: not implemented (no projection)");
    if (a.has("transforms")) {
      for (const std::string& t : string_list(a["transforms"])) {
        STUNT_CHECK_AS(NotImplementedError, t == "identity", where, ".transforms: '", t,
                       "' is not implemented; the outputs are compared as they are (identity)");
      }
    }
    STUNT_CHECK_AS(NotImplementedError, !a.has("transforms_args") || a["transforms_args"].empty(),
                   where, ".transforms_args: not implemented (identity transforms only)");
    STUNT_CHECK_AS(NotImplementedError, !a.has("comparison_args") || a["comparison_args"].empty(),
                   where, ".comparison_args: not implemented; the comparisons take no arguments");
    entries_ = read_target_entries(a["targets"], where);
  }

  bool sparseml_ = false;
  std::vector<TargetEntry> entries_;
  std::vector<BlockPair> pairs_;
  distill::HiddenComparison comparison_ = distill::HiddenComparison::SquareHead;
  double gain_ = 1.5;
  double orig_scale_ = 1.0;
  double distill_scale_ = 1.0;
  bool distill_scale_set_ = false;
  double epsilon_ = 1e-6;
  bool project_ = false;
  double start_epoch_ = -1.0;
  double end_epoch_ = -1.0;
  int64_t student_width_ = 0, teacher_width_ = 0;
  std::vector<std::pair<std::string, at::Tensor>> projections_;
  model::Model* teacher_ = nullptr;
  std::shared_ptr<TeacherForward> teacher_forward_;
  bool active_ = false;
  double task_loss_ = 0.0;
  double hidden_loss_ = 0.0;
};

}  // namespace

std::unique_ptr<TrainingModifier> make_hidden_state_distillation(const ModifierSpec& spec,
                                                                 bool sparseml) {
  return std::make_unique<HiddenStateDistillation>(spec, sparseml);
}

}  // namespace stunt::recipe::detail
