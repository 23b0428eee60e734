#pragma once
/// Modifiers and their lifecycle. Every method is a Modifier; the ModifierRunner calls the
/// lifecycle in order (initialize, start, update on events, end, finalize) and throws
/// LifecycleError when a caller breaks that order.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

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

/// What modifiers act on. The model and data handles arrive with the model engine; for now it
/// carries the training clock.
struct State {
  int64_t step = 0;
  double epoch = 0.0;
};

/// One compression method configured from a recipe. Subclasses override the hooks they need;
/// only ModifierRunner calls them.
class Modifier {
 public:
  explicit Modifier(ModifierSpec spec) : spec_(std::move(spec)) {}
  virtual ~Modifier() = default;
  const ModifierSpec& spec() const { return spec_; }

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
