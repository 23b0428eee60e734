#pragma once
/// A recipe's train stage inside the user's own training loop (DESIGN.md, "the library, linked
/// from the user's own C++ training code"). The loop stays the user's: their model (a
/// ModuleModel over their torch::nn::Module, or any Model), data, loss and optimizer. The
/// session applies the recipe's training-time methods (quantization-aware training, gradual,
/// movement and constant pruning, SparseML's epoch and learning-rate modifiers) and is told
/// where the loop stands:
///
///     stunt::model::ModuleModel model(net);               // net: the user's torch::nn::Module
///     stunt::recipe::SessionOptions options;
///     options.steps_per_epoch = batches_per_epoch;
///     stunt::recipe::CompressionSession session(model, stunt::recipe::load_recipe(path), options);
///     auto params = net->parameters();
///     for (auto& p : session.parameters()) params.push_back(p);   // learned scales (LSQ)
///     torch::optim::AdamW optimizer(params, 1e-3);
///     while (session.epoch() < session.epochs()) {
///       session.batch_start();
///       optimizer.zero_grad();
///       session.loss(loss_fn(net->forward(x), y)).backward();
///       session.step(optimizer);      // optimizer_pre_step, optimizer.step(), optimizer_post_step
///     }
///     session.finalize();
///     session.save("out/");           // compressed-tensors, as `compress` writes
///
/// Steps and epochs count as the Trainer counts them (train/trainer.h): an epoch is
/// steps_per_epoch optimizer steps, and schedules in epochs end exactly where the recipe says.

#include <ATen/core/Tensor.h>
#include <torch/optim/optimizer.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "stunt/core/atomic_file.h"
#include "stunt/model/model.h"
#include "stunt/recipe/modifier.h"
#include "stunt/recipe/recipe.h"
#include "stunt/recipe/training.h"
#include "stunt/train/distributed.h"
#include "stunt/train/trainer.h"

namespace stunt::recipe {

struct SessionOptions {
  /// Optimizer steps in one epoch of the caller's loop; the recipe's epochs (start_epoch,
  /// end_epoch, update_frequency) count in these. Must be > 0.
  int64_t steps_per_epoch = 0;
  /// Where the model will run (State::target): "cpu", "a10", ... or "" when unsaid.
  std::string target;
  /// The teacher the recipe's distillation modifiers learn from (a model in inference mode that
  /// outlives the session; a ModuleModel needs its forward function), or null.
  model::Model* teacher = nullptr;
  /// Data-parallel loops (one process per rank, each with its share of every global batch, as
  /// torchrun launches them): the group the ranks joined, e.g.
  ///     train::ProcessGroup(*train::distributed_environment())
  /// The session then starts every rank from rank 0's model and learned scales, step()
  /// averages the gradients across ranks, methods make what each rank learned alone (observer
  /// statistics) equal after every step, and only rank 0 writes (save, save_state). Every rank
  /// makes the same calls in the same order.
  std::shared_ptr<train::ProcessGroup> process_group;
};

class CompressionSession {
 public:
  /// Validates `recipe` (as load_recipe does, when the caller parsed it), builds the training
  /// form of every modifier of its one stage and finds their layers on `model`. The methods
  /// start at the first batch_start() (or finalize()): those due at epoch 0 act then (fake
  /// quantization from step 0, an initial sparsity). RecipeError / ValueError / NotImplementedError
  /// naming the recipe path for a recipe that cannot train here (a one-shot-only method such as
  /// GPTQModifier, several stages, a target that matches nothing); nothing is changed on the model
  /// then. The model must outlive the session.
  CompressionSession(model::Model& model, Recipe recipe, SessionOptions options);
  ~CompressionSession();
  CompressionSession(const CompressionSession&) = delete;
  CompressionSession& operator=(const CompressionSession&) = delete;

  /// Tensors the methods train beside the model's own (LSQ's step sizes and zero points): add
  /// them to the optimizer. Empty for most recipes.
  std::vector<at::Tensor> parameters() const;
  /// The same, by name ("fc1.weight_log_scale").
  const std::vector<std::pair<std::string, at::Tensor>>& named_parameters() const;

  /// What the recipe decides about the run: its length in epochs (an EpochRangeModifier, or the
  /// end of the last schedule, or 1) and weight decay. The loop may follow it or not.
  const train::TrainerOptions& training_options() const { return options_; }
  double epochs() const { return options_.epochs; }
  /// Optimizer steps completed, and the fractional epoch they make.
  int64_t steps() const { return info_.step; }
  double epoch() const { return info_.epoch; }

  /// The start of an optimizer step (before the forward of its first micro-batch).
  void batch_start();
  /// A micro-batch's loss, as the loop computed it; returns the loss to call backward() on.
  /// LifecycleError for a recipe that distils, which needs the overload below.
  at::Tensor loss(const at::Tensor& loss);
  /// The same, with what distillation reads: the micro-batch (the teacher runs on batch.inputs;
  /// batch.labels, when they have the logits' leading shape and are integers, mark the scored
  /// positions with values other than -100) and the student's output on it (logits; block outputs
  /// for hidden-state distillation, with model.set_keep_block_outputs on). The distillation
  /// modifiers add their terms here.
  at::Tensor loss(const at::Tensor& loss, const train::TrainingBatch& batch,
                  const model::Output& output);
  /// After backward() of the step's last micro-batch and any clipping, before optimizer.step().
  void optimizer_pre_step();
  /// After optimizer.step(): the step counts, masks are applied again, schedules advance.
  void optimizer_post_step();
  /// optimizer_pre_step(), optimizer.step(), optimizer_post_step(); with the recipe's learning
  /// rate for this step (SetLearningRateModifier, LearningRateFunctionModifier) set on every
  /// parameter group first, when the recipe gives one. In a data-parallel session the
  /// optimizer's gradients are averaged across ranks first (average_gradients).
  void step(torch::optim::Optimizer& optimizer);
  /// Data-parallel sessions: replaces every defined gradient of the optimizer's parameters by
  /// its mean over the ranks. step() calls it; a loop that calls optimizer_pre_step itself calls
  /// it after backward() (before clipping). Nothing without a process group.
  void average_gradients(torch::optim::Optimizer& optimizer);
  /// The recipe's learning rate for the current step, when it sets one.
  std::optional<double> learning_rate() const;

  /// Writes (on rank 0 only) the session's state into `folder`, replacing it atomically: the step,
  /// every method's state (masks, observer statistics) and the learned scales. Together with the
  /// model's parameters and the optimizer's state (torch::save), it resumes a killed loop
  /// exactly: build the model, session and optimizer as before, restore those two, call
  /// load_state(folder), and continue with the next step. Between steps only.
  void save_state(const std::filesystem::path& folder) const;
  /// Restores what save_state wrote, before the first batch_start(). ValueError naming the
  /// folder when it was written for another recipe or steps_per_epoch; LifecycleError after the
  /// session has started.
  void load_state(const std::filesystem::path& folder);

  /// Numbers worth logging now ("sparsity").
  std::map<std::string, double> metrics() const;

  /// Ends training: masks stay applied (the zeros are in the weights), quantization-aware
  /// layers give their trained scales to the quantization plan and their weights become the
  /// values saving writes, and quantized inputs stay quantized in the model's forward, so that
  /// the model computes what the saved checkpoint holds. Returns the state (plan, pruned
  /// positions). LifecycleError in the middle of a step or when called twice.
  State& finalize();
  /// Writes (on rank 0 only) the finalized model into `folder` (replacing it atomically): a Hugging
  /// Face model as `compress` writes it (compressed-tensors when quantized); any other model as
  /// model.safetensors in compressed-tensors' layout plus config.json with quantization_config.
  /// An existing non-empty folder is an error unless `output.overwrite`.
  void save(const std::filesystem::path& folder, OutputFolderOptions output = {}) const;

 private:
  enum class Phase { BetweenSteps, InStep, PreStepDone, Finalized };
  void require(bool ok, const char* call, const char* expected) const;
  /// on_train_start for every method, once.
  void start();
  /// Whether this process writes: rank 0, or the only process.
  bool writes() const;
  /// What a saved state must match: the recipe and steps_per_epoch.
  std::string identity() const;

  model::Model& model_;
  Recipe recipe_;
  SessionOptions session_options_;
  State state_;
  std::vector<std::unique_ptr<TrainingModifier>> modifiers_;
  std::vector<train::TrainingCallbacks*> callbacks_;
  std::vector<std::pair<std::string, at::Tensor>> parameters_;
  train::TrainerOptions options_;
  train::StepInfo info_;
  Phase phase_ = Phase::BetweenSteps;
  bool started_ = false;
  /// Whether a modifier distils (and so needs the batch and output in loss()).
  bool distils_ = false;
};

}  // namespace stunt::recipe
