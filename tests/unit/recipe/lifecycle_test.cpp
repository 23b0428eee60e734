#include "stunt/core/error.h"
#include "stunt/recipe/modifier.h"
#include "test_util.h"

namespace stunt::recipe {
namespace {

class RecordingModifier : public Modifier {
 public:
  explicit RecordingModifier(std::vector<std::string>* log)
      : Modifier({"Rec", "", "p", {}}), log_(log) {}

 protected:
  void on_initialize(State&) override { log_->push_back("initialize"); }
  void on_start(State&) override { log_->push_back("start"); }
  void on_update(State& s, const Event& e) override {
    log_->push_back(std::string(to_string(e.type)) + "@" + std::to_string(s.step));
  }
  void on_end(State&) override { log_->push_back("end"); }
  void on_finalize(State&) override { log_->push_back("finalize"); }

 private:
  std::vector<std::string>* log_;
};

ModifierRunner make_runner(std::vector<std::string>* log) {
  std::vector<std::unique_ptr<Modifier>> mods;
  mods.push_back(std::make_unique<RecordingModifier>(log));
  return ModifierRunner(std::move(mods));
}

TEST(Lifecycle, RunsHooksInOrderWithTrainingEvents) {
  std::vector<std::string> log;
  auto runner = make_runner(&log);
  State state;
  runner.initialize(state);
  runner.start(state);
  for (int64_t step = 0; step < 2; ++step) {
    for (auto type : {EventType::BatchStart, EventType::LossCalculated, EventType::OptimizerPreStep,
                      EventType::OptimizerPostStep, EventType::BatchEnd}) {
      runner.event(state, {type, step, step * 0.5, 1.0});
    }
  }
  runner.event(state, {EventType::EpochEnd, 2, 1.0});
  runner.end(state);
  runner.finalize(state);
  EXPECT_EQ(log.front(), "initialize");
  EXPECT_EQ(log[2], "batch_start@0");
  EXPECT_EQ(log[11], "batch_end@1");
  EXPECT_EQ(log.back(), "finalize");
  EXPECT_EQ(log.size(), 2u + 10u + 1u + 2u);
  EXPECT_EQ(runner.phase(), ModifierRunner::Phase::Finalized);
}

TEST(Lifecycle, OutOfOrderCallsAreLifecycleErrors) {
  std::vector<std::string> log;
  auto runner = make_runner(&log);
  State state;
  EXPECT_THROW_WITH(runner.start(state), LifecycleError, "it must follow initialized");
  EXPECT_THROW_WITH(runner.event(state, {EventType::BatchStart}), LifecycleError,
                    "between start() and end()");
  runner.initialize(state);
  EXPECT_THROW_WITH(runner.initialize(state), LifecycleError, "must follow created");
  runner.start(state);
  EXPECT_THROW_WITH(runner.event(state, {EventType::OptimizerPreStep}), LifecycleError,
                    "cannot follow the start of a step");
  runner.event(state, {EventType::BatchStart});
  EXPECT_THROW_WITH(runner.event(state, {EventType::EpochEnd}), LifecycleError,
                    "cannot follow batch_start");
  EXPECT_THROW_WITH(runner.end(state), LifecycleError, "in the middle of a step");
  EXPECT_THROW_WITH(runner.finalize(state), LifecycleError, "must follow ended");
  EXPECT_TRUE(std::find(log.begin(), log.end(), "end") == log.end());
}

}  // namespace
}  // namespace stunt::recipe
