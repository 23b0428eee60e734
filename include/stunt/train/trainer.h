#pragma once
/// The training loop that every training-time method runs in (DESIGN.md, "Training and
/// scale-out"): seeded shuffling, gradient accumulation and clipping, AdamW or SGD with a
/// learning-rate schedule, events to the methods that compress during training, metrics, and
/// checkpoints from which a killed run resumes to the same weights, bit for bit on the CPU.
///
/// Counting follows SparseML: an epoch is steps_per_epoch() optimizer steps, each of
/// batch_size * gradient_accumulation examples taken in the epoch's seeded order (examples left
/// over at the end of an epoch are skipped, so every step sees the same number); epochs in a
/// schedule are fractions of that count (prune/gradual_schedule.h, epoch_after_steps).
///
/// Data-parallel runs (TrainerOptions::process_group) count the same way with a global step of
/// batch_size * gradient_accumulation * world_size examples: micro-batch m of rank r takes the
/// step's examples [(m * world_size + r) * batch_size, ... + batch_size), so the run equals one
/// process with gradient_accumulation * world_size micro-batches, up to float rounding.

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "stunt/model/model.h"
#include "stunt/train/distributed.h"
#include "stunt/train/learning_rate.h"

namespace stunt::train {

/// A teacher known by its stored top-k per position (offline distillation, TeacherLogitsData);
/// all undefined when the batch carries none.
struct StoredTeacher {
  /// [batch, seq, k] token ids and the teacher's log-probabilities of them; row t is the
  /// distribution over the token after position t.
  at::Tensor top_ids;
  at::Tensor top_log_probs;
  /// [batch, seq] bool: where a row is stored.
  at::Tensor scored;
  /// The temperature the log-probabilities were taken at (compress label --logits-temperature).
  double temperature = 1.0;
};

/// One batch: the model's inputs and the targets the task scores.
struct TrainingBatch {
  model::Batch inputs;
  /// Causal language modelling: the ids to predict, [batch, seq], -100 where nothing is scored.
  at::Tensor labels;
  StoredTeacher teacher;
};

/// Examples addressed by index, so that the trainer can order them by seed and resume anywhere.
class TrainingData {
 public:
  virtual ~TrainingData() = default;
  virtual int64_t size() const = 0;
  /// The batch of `examples` (indices below size()).
  virtual TrainingBatch batch(const std::vector<int64_t>& examples) const = 0;
  /// Identifies the data for checkpoints: a resume with other data is refused.
  virtual std::string fingerprint() const = 0;
};

/// Windows of token ids for causal language modelling; every position but the first is
/// predicted from the ones before it.
class TokenWindowData : public TrainingData {
 public:
  /// Windows of equal length; `fingerprint` names where they came from (file, settings).
  TokenWindowData(std::vector<std::vector<int64_t>> windows, std::string fingerprint);
  int64_t size() const override { return static_cast<int64_t>(windows_.size()); }
  TrainingBatch batch(const std::vector<int64_t>& examples) const override;
  std::string fingerprint() const override { return fingerprint_; }

 private:
  std::vector<std::vector<int64_t>> windows_;
  std::string fingerprint_;
};

/// What a loss function gives the trainer: the batch's mean loss, and the model's outputs it
/// came from, which callbacks that add terms (distillation) compare with a teacher's. A bare
/// loss tensor converts to it, with no outputs.
struct TaskLoss {
  TaskLoss(at::Tensor loss, model::Output output = {})  // NOLINT(google-explicit-constructor)
      : loss(std::move(loss)), output(std::move(output)) {}
  at::Tensor loss;
  model::Output output;
};

/// The mean loss of a batch, computed with autograd on the model's forward_with_grad().
using LossFunction = std::function<TaskLoss(model::Model& model, const TrainingBatch& batch)>;

/// Measures the model on held-out data (accuracy, perplexity): names and values. The trainer
/// calls it in evaluation mode (dropout off) without autograd; it must not change the model.
using Evaluation = std::function<std::map<std::string, double>(model::Model& model)>;

/// Makes dense the gradients left sparse: an embedding table whose tied head took no gradient
/// (Model::call sends a tied table's gradient as sparse rows). Optimizers and gradient clipping
/// want dense ones; the Trainer and CompressionSession call this after backward.
void densify_gradients(const std::vector<std::pair<std::string, at::Tensor>>& parameters);

/// Next-token cross-entropy over the positions whose label is not -100 (transformers'
/// causal-LM loss: logits at position t predict labels at t + 1).
TaskLoss causal_lm_loss(model::Model& model, const TrainingBatch& batch);

enum class OptimizerKind { AdamW, Sgd };

/// "adamw", "sgd".
const char* to_string(OptimizerKind kind);

struct OptimizerOptions {
  OptimizerKind kind = OptimizerKind::AdamW;
  double weight_decay = 0.0;
  /// AdamW.
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  /// SGD.
  double momentum = 0.0;
  bool nesterov = false;
  /// AdamW through ATen's fused kernel (train/fused_adamw.h), as torch.optim.AdamW(fused=True);
  /// false: LibTorch's torch::optim::AdamW, which equals it up to float rounding.
  bool fused = true;
};

struct TrainerOptions {
  /// Examples per micro-batch.
  int64_t batch_size = 8;
  /// Micro-batches whose gradients add up to one optimizer step.
  int64_t gradient_accumulation = 1;
  /// Length of the run in epochs (fractions allowed), unless max_steps is set.
  double epochs = 1.0;
  /// When > 0, the run is this many optimizer steps whatever `epochs` says.
  int64_t max_steps = 0;
  OptimizerOptions optimizer;
  /// The rate of every step; its total_steps is filled in from the run's length.
  LearningRateSchedule learning_rate;
  /// Gradient clipping by global L2 norm; 0 turns it off.
  double max_grad_norm = 0.0;
  /// Seeds the order of the examples in every epoch, and ATen's default CPU generator (dropout)
  /// when the run starts.
  uint64_t seed = 0;
  /// Write a checkpoint every this many steps (0: only at the end and on SIGINT/SIGTERM) into
  /// checkpoint_dir; none at all when checkpoint_dir is empty.
  int64_t checkpoint_every = 0;
  std::filesystem::path checkpoint_dir;
  /// Keep at most this many checkpoints (the newest).
  int64_t keep_checkpoints = 2;
  /// Resume from the newest complete checkpoint in checkpoint_dir, if there is one.
  bool resume = false;
  /// A metrics line (JSON) per this many steps into metrics_file, when set.
  int64_t log_every = 10;
  /// Held-out measurements every eval_every steps (0: only at the end) and at the end of the
  /// run, logged and added to the metrics lines as "eval_<name>". Rank 0 evaluates.
  Evaluation evaluate;
  int64_t eval_every = 0;
  std::filesystem::path metrics_file;
  /// What the run is, for checkpoints (recipe and model hashes): a resume from a checkpoint
  /// written for anything else is refused.
  std::string run_fingerprint;
  /// Data-parallel training: gradients are averaged across the group's ranks every step, rank 0
  /// writes checkpoints and metrics and draws the progress bar, every rank reads checkpoint_dir
  /// on resume (a folder all ranks see). Null: one process.
  std::shared_ptr<ProcessGroup> process_group;
};

/// Where a run stands, as the events report it.
struct StepInfo {
  /// Optimizer steps completed.
  int64_t step = 0;
  /// Progress in epochs after `step` steps (epoch_after_steps).
  double epoch = 0.0;
  int64_t steps_per_epoch = 0;
  int64_t total_steps = 0;
  /// The rate the current (or last) step uses.
  double learning_rate = 0.0;
  /// The last step's loss (mean over its micro-batches).
  double loss = 0.0;
};

/// State that a callback keeps across a checkpoint.
struct CallbackState {
  std::map<std::string, at::Tensor> tensors;
  nlohmann::ordered_json json = nlohmann::ordered_json::object();
};

/// What methods that compress during training hook into, in the order of a step:
/// batch_start, loss (once per micro-batch), optimizer_pre_step (gradients complete and
/// clipped), optimizer_post_step, then epoch_end when the step completes an epoch.
/// on_train_start runs before the first step, and again after a resume (after load_state).
class TrainingCallbacks {
 public:
  virtual ~TrainingCallbacks() = default;
  /// A unique key for this callback's state in checkpoints.
  virtual std::string name() const = 0;
  virtual void on_train_start(const StepInfo& info) {}
  virtual void on_batch_start(const StepInfo& info) {}
  /// May replace `loss` (distillation adds its terms); `output` is the model's output on `batch`
  /// that the loss came from (empty when the loss function gives none).
  virtual void on_loss(const StepInfo& info, const TrainingBatch& batch,
                       const model::Output& output, at::Tensor& loss) {}
  virtual void on_optimizer_pre_step(const StepInfo& info) {}
  virtual void on_optimizer_post_step(const StepInfo& info) {}
  virtual void on_epoch_end(const StepInfo& info) {}
  virtual void on_train_end(const StepInfo& info) {}
  /// Tensors this callback trains beside the model's (learned quantization scales), by a name
  /// unique in the run; asked once, before the optimizer is made.
  virtual std::vector<std::pair<std::string, at::Tensor>> parameters() { return {}; }
  /// Overrides the scheduled learning rate at this step (SparseML's learning-rate modifiers).
  virtual std::optional<double> learning_rate(const StepInfo& info) { return std::nullopt; }
  /// Data-parallel runs, after on_optimizer_post_step: make state that each rank learned from
  /// its own examples (observer statistics) equal on every rank.
  virtual void synchronize(ProcessGroup& group) {}
  virtual void save_state(CallbackState& state) const {}
  virtual void load_state(const CallbackState& state) {}
  /// Numbers for the metrics line and the progress bar ("sparsity": 0.42).
  virtual void metrics(std::map<std::string, double>& out) const {}
};

struct TrainResult {
  int64_t steps = 0;
  double epochs = 0.0;
  double final_loss = 0.0;
  /// True when SIGINT or SIGTERM stopped the run after a checkpoint; rerun with resume.
  bool interrupted = false;
  /// The step the run resumed from (0 for a fresh run).
  int64_t resumed_from = 0;
  /// The last evaluation (TrainerOptions::evaluate), on rank 0.
  std::map<std::string, double> evaluation;
  double seconds = 0.0;
};

/// Trains `model` on `data`. The model's trainable tensors (layer weights and biases, norms)
/// become owned leaf tensors that require grad; the model is in training mode (dropout on)
/// while run() runs.
class Trainer {
 public:
  Trainer(model::Model& model, const TrainingData& data, LossFunction loss, TrainerOptions options);
  ~Trainer();
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  /// Callbacks run in the order added; the trainer does not own them.
  void add_callbacks(TrainingCallbacks& callbacks);
  /// Optimizer steps per epoch; ValueError when the data holds fewer examples than one step.
  int64_t steps_per_epoch() const;
  int64_t total_steps() const;
  /// Runs to the end (or to an interruption).
  TrainResult run();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// The examples of every optimizer step of an epoch: a permutation of [0, size) seeded by
/// (seed, epoch), the same on every machine (its own Fisher-Yates over splitmix64).
std::vector<int64_t> epoch_order(int64_t size, uint64_t seed, int64_t epoch);

}  // namespace stunt::train
