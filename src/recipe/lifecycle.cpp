#include "stunt/core/error.h"
#include "stunt/recipe/modifier.h"

namespace stunt::recipe {

const char* to_string(EventType type) {
  switch (type) {
    case EventType::BatchStart:
      return "batch_start";
    case EventType::LossCalculated:
      return "loss_calculated";
    case EventType::OptimizerPreStep:
      return "optimizer_pre_step";
    case EventType::OptimizerPostStep:
      return "optimizer_post_step";
    case EventType::BatchEnd:
      return "batch_end";
    case EventType::EpochEnd:
      return "epoch_end";
  }
  return "?";
}

const char* to_string(ModifierRunner::Phase phase) {
  switch (phase) {
    case ModifierRunner::Phase::Created:
      return "created";
    case ModifierRunner::Phase::Initialized:
      return "initialized";
    case ModifierRunner::Phase::Started:
      return "started";
    case ModifierRunner::Phase::Ended:
      return "ended";
    case ModifierRunner::Phase::Finalized:
      return "finalized";
  }
  return "?";
}

ModifierRunner::ModifierRunner(std::vector<std::unique_ptr<Modifier>> modifiers)
    : modifiers_(std::move(modifiers)) {}

void ModifierRunner::require(Phase expected, const char* call) const {
  if (phase_ == expected) return;
  throw LifecycleError(str(call, "() called while the modifiers are ", to_string(phase_),
                           "; it must follow ", to_string(expected),
                           " (order: initialize, start, events, end, finalize)"));
}

void ModifierRunner::initialize(State& state) {
  require(Phase::Created, "initialize");
  for (auto& m : modifiers_) m->on_initialize(state);
  phase_ = Phase::Initialized;
}

void ModifierRunner::start(State& state) {
  require(Phase::Initialized, "start");
  for (auto& m : modifiers_) m->on_start(state);
  phase_ = Phase::Started;
}

void ModifierRunner::event(State& state, const Event& event) {
  if (phase_ != Phase::Started) {
    throw LifecycleError(str("event ", to_string(event.type), " arrived while the modifiers are ",
                             to_string(phase_),
                             "; events are delivered between start() and end()"));
  }
  // Allowed predecessor within a step for each event.
  auto allowed = [&]() -> bool {
    switch (event.type) {
      case EventType::BatchStart:
        return !last_event_ || *last_event_ == EventType::BatchEnd ||
               *last_event_ == EventType::OptimizerPostStep;
      case EventType::LossCalculated:
        return last_event_ == EventType::BatchStart;
      case EventType::OptimizerPreStep:
        return last_event_ == EventType::LossCalculated;
      case EventType::OptimizerPostStep:
        return last_event_ == EventType::OptimizerPreStep;
      case EventType::BatchEnd:
        return last_event_ == EventType::OptimizerPostStep;
      case EventType::EpochEnd:
        return !last_event_ || *last_event_ == EventType::BatchEnd ||
               *last_event_ == EventType::OptimizerPostStep;
    }
    return false;
  }();
  if (!allowed) {
    throw LifecycleError(str("event ", to_string(event.type), " cannot follow ",
                             last_event_ ? to_string(*last_event_) : "the start of a step",
                             "; within a step the order is batch_start, loss_calculated, "
                             "optimizer_pre_step, optimizer_post_step, batch_end"));
  }
  state.step = event.step;
  state.epoch = event.epoch;
  for (auto& m : modifiers_) m->on_update(state, event);
  last_event_ = event.type;
  if (event.type == EventType::EpochEnd) last_event_.reset();
}

void ModifierRunner::end(State& state) {
  require(Phase::Started, "end");
  if (last_event_ && *last_event_ != EventType::BatchEnd &&
      *last_event_ != EventType::OptimizerPostStep) {
    throw LifecycleError(str("end() called in the middle of a step (after ",
                             to_string(*last_event_), "); finish the step first"));
  }
  for (auto& m : modifiers_) m->on_end(state);
  phase_ = Phase::Ended;
}

void ModifierRunner::finalize(State& state) {
  require(Phase::Ended, "finalize");
  for (auto& m : modifiers_) m->on_finalize(state);
  phase_ = Phase::Finalized;
}

}  // namespace stunt::recipe
