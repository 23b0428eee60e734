#pragma once
/// Recipes with train stages: a stage trains when it says `run_type: train`, or when its
/// modifiers carry a schedule (llm-compressor's start/end/update, SparseML's epochs, a gradual
/// sparsity), as llm-compressor and SparseML decided. A recipe may alternate one-shot and train
/// stages; run_recipe runs them in order on one model and one State.

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "stunt/io/tokenizer.h"
#include "stunt/recipe/modifier.h"
#include "stunt/recipe/oneshot.h"
#include "stunt/recipe/recipe.h"
#include "stunt/train/trainer.h"

namespace stunt::recipe {

/// A modifier of a train stage: the callbacks it gives the trainer, what it sets in the training
/// options, and what it leaves in the State when training ends.
class TrainingModifier {
 public:
  explicit TrainingModifier(ModifierSpec spec) : spec_(std::move(spec)) {}
  virtual ~TrainingModifier() = default;
  TrainingModifier(const TrainingModifier&) = delete;
  TrainingModifier& operator=(const TrainingModifier&) = delete;
  const ModifierSpec& spec() const { return spec_; }
  /// Finds its layers on state.model (and registers schemes in the plan); after construction,
  /// which checks every argument without a model.
  virtual void resolve(State& state) {}
  /// What the trainer calls; owned by the modifier. Their names start with the recipe path.
  virtual std::vector<train::TrainingCallbacks*> callbacks() { return {}; }
  /// Sets what the modifier decides about the run (epochs, rates, weight decay).
  virtual void configure(train::TrainerOptions& options) {}
  /// After training: records the result (QAT's scales in the plan, masks in State::pruned).
  virtual void finish(State& state) {}

 private:
  ModifierSpec spec_;
};

/// Builds the training-time form of a modifier for a train stage, reading and checking every
/// argument (no model needed; resolve() attaches it). Throws NotImplementedError for modifiers
/// that cannot train, RecipeError/ValueError for arguments that cannot run.
std::unique_ptr<TrainingModifier> make_training_modifier(const ModifierSpec& spec,
                                                         RecipeSyntax syntax);

/// Whether `stage` trains (see above).
bool is_train_stage(const Stage& stage);

/// The latest epoch at which a schedule of `stage` ends (end_epoch, end), 0 when none does.
double schedule_end_epoch(const Stage& stage);

/// The train stages that run as one training run with `recipe.stages[first]` (a train stage):
/// the index after the last of them. In SparseML's syntax every stage counts its epochs from
/// the start of training (its staged recipes continue one run: qat_stage's start_epoch 6 follows
/// prune_stage's 6 epochs), so consecutive train stages share one run and one epoch count; in
/// llm-compressor's each train stage is a run of its own.
size_t training_run_end(const Recipe& recipe, size_t first);

/// Whether a modifier of this type has a training-time form (make_training_modifier).
bool runs_in_training(const std::string& type, RecipeSyntax syntax);

/// How train stages run: the data, the batch, the length of the run, and where checkpoints go.
/// What a train stage learns.
enum class TrainingTask {
  /// Classification when the model has a classifier head (a layer named "classifier"); else
  /// seq2seq for T5, sentence embedding for BERT-family encoders, causal language modelling
  /// for the rest.
  Auto,
  /// Next-token prediction on consecutive windows of the text.
  CausalLm,
  /// Class labels of JSONL records ("text", integer "label"), one record per example.
  Classification,
  /// Pooled sentence embeddings (the model folder's sentence-transformers pooling) of JSONL
  /// records: pairs ("text", "text_pair", "score") scored by cosine similarity, or texts with
  /// a target "embedding" scored by squared error.
  SentenceEmbedding,
  /// Encoder-decoder (T5) records "text" → "target", teacher-forced.
  Seq2Seq,
};

/// "auto", "causal-lm", "classification", "sentence-embedding", "seq2seq"; ValueError naming
/// `where` otherwise.
TrainingTask parse_training_task(const std::string& name, const std::string& where);

struct TrainingRunOptions {
  /// Causal LM: training text (one sample per line, or JSONL "text"), cut into windows of
  /// seq_len tokens. The other tasks: JSONL records (see TrainingTask), each text cut to
  /// seq_len.
  std::filesystem::path dataset;
  TrainingTask task = TrainingTask::Auto;
  /// Held-out data in the same form as `dataset`, measured at the end of each train stage and
  /// every eval_every steps (0: only at the end): accuracy for classification, perplexity for
  /// causal language modelling. None when empty.
  std::filesystem::path eval_data;
  int64_t eval_every = 0;
  int64_t seq_len = 512;
  int64_t batch_size = 8;
  int64_t gradient_accumulation = 1;
  /// Overrides the recipe's epochs when > 0.
  int64_t max_steps = 0;
  /// Epochs when the recipe says nothing (no EpochRangeModifier, no schedule end).
  double epochs = 1.0;
  /// The peak rate unless a learning-rate modifier sets it.
  double learning_rate = 5e-5;
  int64_t warmup_steps = 0;
  train::LearningRateShape decay = train::LearningRateShape::Linear;
  double weight_decay = 0.0;
  double max_grad_norm = 1.0;
  uint64_t seed = 0;
  /// Checkpoints of every train stage go to <checkpoint_dir>/stage-<i>; none when empty.
  std::filesystem::path checkpoint_dir;
  int64_t checkpoint_every = 0;
  /// Continue from the checkpoints in checkpoint_dir.
  bool resume = false;
  /// Metrics as JSON lines, one file for the run.
  std::filesystem::path metrics_file;
  /// The teacher of distillation modifiers (a Hugging Face folder, GGUF file or
  /// compressed-tensors folder), loaded once when a train stage distils; refused when none does.
  std::filesystem::path teacher;
  /// Offline distillation: a label folder of the teacher's top-k log-probabilities (`compress
  /// label --kind logits`) to train on instead of `dataset` (which then only calibrates one-shot
  /// stages); a DistillationModifier learns from them with no teacher in memory. With `teacher`
  /// also set, the labels must come from that teacher (it is not loaded). Labels of the
  /// teacher's generations (--kind generate) are text to learn; a DistillationModifier beside
  /// them needs `teacher`, loaded, to give its distributions on the same tokens.
  std::filesystem::path labels;
  /// With labels of kind generate (sequence-level distillation): predict the prompts' tokens as
  /// well as the teacher's generations. Refused with any other training data.
  bool prompt_loss = false;
  /// The model's tokenizer, for text datasets.
  const io::Tokenizer* tokenizer = nullptr;
  /// Identifies the run in checkpoints (the model's path); the recipe is added.
  std::string fingerprint;
  /// Data-parallel training across this group's ranks (train/distributed.h); null: one process.
  /// One-shot stages run on every rank alike, so that all hold the same model.
  std::shared_ptr<train::ProcessGroup> process_group;
};

/// Runs every stage of `recipe` in order on `model`: one-shot stages as run_oneshot does,
/// train stages with the Trainer on windows of `training.dataset`. Everything that can be
/// refused without the model is refused before any work (check_recipe); a train stage after a
/// stage that quantized is refused (put the QuantizationModifier in the train stage: QAT).
State run_recipe(const Recipe& recipe, std::unique_ptr<model::HfModel>& model,
                 const OneshotOptions& oneshot, const TrainingRunOptions& training);

}  // namespace stunt::recipe
