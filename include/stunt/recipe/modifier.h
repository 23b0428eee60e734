#pragma once
/// Modifiers and their lifecycle. Every method is a Modifier; the ModifierRunner calls the
/// lifecycle in order (initialize, start, update on events, end, finalize) and throws
/// LifecycleError when a caller breaks that order.

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "stunt/core/error.h"
#include "stunt/model/hf_model.h"
#include "stunt/model/model.h"
#include "stunt/quant/quantization_plan.h"
#include "stunt/recipe/recipe.h"

namespace stunt::recipe {

/// Training events, in the order they occur within a step (epoch_end between steps).
enum class EventType {
  BatchStart,
  LossCalculated,
  OptimizerPreStep,
  OptimizerPostStep,
  BatchEnd,
  EpochEnd
};
const char* to_string(EventType type);

struct Event {
  EventType type;
  /// Global optimizer step (0-based) and fractional epoch at the event.
  int64_t step = 0;
  double epoch = 0.0;
  /// The loss, for LossCalculated.
  double loss = 0.0;
};

/// What modifiers act on: the training clock, the model, and what quantization has decided so
/// far (shared by the quantization modifiers of a recipe, read when the model is saved).
class TeacherForward;

struct State {
  int64_t step = 0;
  double epoch = 0.0;
  /// The model being compressed; null only in lifecycle tests that run no method.
  model::Model* model = nullptr;
  /// The teacher that distillation modifiers learn from (TrainingRunOptions::teacher), in
  /// inference mode; null when the run has none.
  model::Model* teacher = nullptr;
  /// Whether the training batches carry the teacher's stored top-k instead (offline
  /// distillation from --labels).
  bool stored_teacher = false;
  /// Scales, zero points and schemes of every quantized layer.
  quant::QuantizationPlan quantization;
  /// Where the model will run ("cpu", "a10", "a100", "h100", "h200", or "" when unsaid); modifiers
  /// refuse what the target cannot run (FP8 activations on Ampere).
  std::string target;
  /// Whether calibration batches are available (one-shot runs with a dataset).
  bool has_calibration_data = false;
  /// During a sequential pass: each calibration batch's input to the current block (with the
  /// block's context: masks, rotary tables), and the batch being run. Null between passes.
  const std::vector<model::BlockState>* block_inputs = nullptr;
  size_t batch = 0;
  /// Pruned positions (bool, true = pruned) of every layer a modifier pruned or fixed so far, by
  /// layer name: later modifiers keep them zero (GPTQ quantizes them to zero).
  std::map<std::string, at::Tensor> pruned;
  /// Blocks a structural modifier dropped, by block-stack prefix ("model.layers."): the index
  /// each remaining block had in the model the recipe started from, so that student block i
  /// learns from teacher block kept[i] when the teacher is that model.
  std::map<std::string, std::vector<int64_t>> kept_blocks;
  /// One teacher forward per batch, shared by the distillation modifiers that read the teacher;
  /// made by the first of them.
  std::shared_ptr<TeacherForward> teacher_forward;
};

/// One compression method configured from a recipe. Subclasses override the hooks they need;
/// only ModifierRunner calls them.
class Modifier {
 public:
  explicit Modifier(ModifierSpec spec) : spec_(std::move(spec)) {}
  virtual ~Modifier() = default;
  const ModifierSpec& spec() const { return spec_; }

  // One-shot work (run_oneshot, oneshot.h), as llm-compressor's independent pipeline runs it:
  // modifiers take turns in recipe order. A modifier that needs calibration data gets its own
  // sequential pass: for every block in order (then once with block -1 for the layers outside
  // every block) the pipeline calls begin_block, runs the block over the calibration batches
  // handing each layer named by calibration_layers its input, calls apply_block, and runs the
  // block again with the changes to make the next block's inputs (unless nothing reads them, or
  // preserves_outputs says the capturing run already made them). Then, with or without a pass,
  // the pipeline calls finish. Fake quantization stays off during passes: layers quantize their
  // inputs only once the whole recipe has run.

  /// Whether this modifier needs calibration data (false: it works from the weights alone).
  virtual bool needs_calibration() const { return false; }
  /// Whether observe() reaches the same result however the calibration samples are grouped
  /// into forward passes (sums over samples, as GPTQ's Hessian). The pass may then run several
  /// batches in one forward: the same arithmetic in larger, faster matrix products.
  virtual bool batch_invariant() const { return false; }
  /// Whether apply_block leaves the block's outputs as they were, up to rounding (a smoothing
  /// that moves scales between a norm and the layers after it). The pass then keeps the
  /// capturing forward's outputs as the next block's inputs instead of running the block again
  /// (State::block_inputs then holds outputs by the time apply_block runs).
  virtual bool preserves_outputs() const { return false; }
  virtual void begin_block(State& state, int block) {}
  /// The layers of `block` whose inputs this modifier wants. Called after the previous block's
  /// apply_block but before its outputs are propagated: it must not read block inputs.
  virtual std::vector<model::Layer*> calibration_layers(State& state, int block) { return {}; }
  virtual void observe(State& state, const model::Layer& layer, const at::Tensor& input) {}
  virtual void apply_block(State& state, int block) {}
  /// The modifier's turn ends: data-free work, or what follows the pass.
  virtual void finish(State& state) {}

  /// Structured pruning: whether this modifier cuts blocks, heads or channels out of the model.
  /// Such modifiers come first in a recipe; run_oneshot gives each its turn through
  /// restructure() before the other modifiers are initialized, since those resolve their
  /// targets against the model's layers.
  virtual bool changes_structure() const { return false; }
  /// Returns the smaller model (Hugging Face models only). `calibration` may be empty.
  virtual std::unique_ptr<model::HfModel> restructure(model::HfModel& model,
                                                      const std::vector<model::Batch>& calibration,
                                                      State& state) {
    throw InternalError(spec_.type + " does not change the model's structure");
  }

 protected:
  friend class ModifierRunner;
  virtual void on_initialize(State& state) {}
  virtual void on_start(State& state) {}
  virtual void on_update(State& state, const Event& event) {}
  virtual void on_end(State& state) {}
  virtual void on_finalize(State& state) {}

 private:
  ModifierSpec spec_;
};

/// Drives a list of modifiers through the lifecycle in order. Not virtual: the order is the
/// contract every modifier relies on.
class ModifierRunner {
 public:
  enum class Phase { Created, Initialized, Started, Ended, Finalized };

  explicit ModifierRunner(std::vector<std::unique_ptr<Modifier>> modifiers);

  void initialize(State& state);
  void start(State& state);
  /// Delivers a training event; within a step the order is batch_start, loss_calculated,
  /// optimizer_pre_step, optimizer_post_step, batch_end; epoch_end only between steps.
  void event(State& state, const Event& event);
  void end(State& state);
  void finalize(State& state);

  Phase phase() const { return phase_; }
  const std::vector<std::unique_ptr<Modifier>>& modifiers() const { return modifiers_; }

 private:
  void require(Phase expected, const char* call) const;

  std::vector<std::unique_ptr<Modifier>> modifiers_;
  Phase phase_ = Phase::Created;
  /// The last event delivered within the current step, or none between steps.
  std::optional<EventType> last_event_;
};

const char* to_string(ModifierRunner::Phase phase);

}  // namespace stunt::recipe
