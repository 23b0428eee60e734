#pragma once
/// Keeps a decode loop fast when another process takes a core. A decode step is a few hundred
/// small operations, each an OpenMP parallel region: when one of the team's threads is
/// descheduled, every region waits for it, and a step that took 10 ms takes 100 ms or more
/// (measured: 0.22x of the idle speed with two threads and one busy core; one thread keeps
/// 0.55x). The governor times the steps and picks the thread count that is fastest now: it
/// starts with every thread, tries one thread early on, keeps the faster, probes the other
/// again at growing intervals, and switches at once when steps turn several times slower than
/// their best.

#include <chrono>
#include <cstdint>
#include <map>
#include <utility>

namespace stunt::model {

class DecodeThreadGovernor {
 public:
  /// Governs between LibTorch's current intra-op thread count and one thread; restores the
  /// count when destroyed.
  DecodeThreadGovernor();
  ~DecodeThreadGovernor();
  DecodeThreadGovernor(const DecodeThreadGovernor&) = delete;
  DecodeThreadGovernor& operator=(const DecodeThreadGovernor&) = delete;

  /// Around each step: begin_step() before, end_step(rows) after; `rows` is the batch the step
  /// ran (steps of different batch sizes are timed apart).
  void begin_step();
  void end_step(int64_t rows);
  /// end_step with the step's time given: for tests.
  void record(double seconds, int64_t rows);

  /// The thread count the next step runs with.
  int threads() const { return current_; }

 private:
  void use(int threads);

  int full_;
  int current_;
  std::chrono::steady_clock::time_point started_;
  /// Best step time by (threads, rows).
  std::map<std::pair<int, int64_t>, double> best_;
  int64_t steps_ = 0;
  /// Steps left in a trial of the other setting, and when the next trial starts.
  int trial_left_ = 0;
  int64_t next_trial_ = 1;
  int64_t trial_interval_ = 32;
  int slow_streak_ = 0;
};

}  // namespace stunt::model
