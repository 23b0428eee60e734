#include "stunt/model/thread_governor.h"

#include <ATen/Parallel.h>

#include "stunt/core/logging.h"

namespace stunt::model {
namespace {

/// Steps each trial of the other setting runs; the best of them counts.
constexpr int kTrialSteps = 2;
/// A step this many times slower than the best at its setting counts as slow; this many slow
/// steps in a row switch the setting.
constexpr double kSlowFactor = 3.0;
constexpr int kSlowSteps = 3;
/// Trials of a losing setting start this many steps apart and back off, doubling, up to the
/// longest interval.
constexpr int64_t kFirstInterval = 32;
constexpr int64_t kLongestInterval = 1024;

}  // namespace

DecodeThreadGovernor::DecodeThreadGovernor() : full_(at::get_num_threads()), current_(full_) {}

DecodeThreadGovernor::~DecodeThreadGovernor() {
  if (current_ != full_) at::set_num_threads(full_);
}

void DecodeThreadGovernor::use(int threads) {
  if (threads == current_) return;
  at::set_num_threads(threads);
  current_ = threads;
}

void DecodeThreadGovernor::begin_step() { started_ = std::chrono::steady_clock::now(); }

void DecodeThreadGovernor::end_step(int64_t rows) {
  record(std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count(), rows);
}

void DecodeThreadGovernor::record(double seconds, int64_t rows) {
  ++steps_;
  if (full_ <= 1) return;
  auto [it, first] = best_.try_emplace({current_, rows}, seconds);
  const double best_here = it->second;
  if (!first && seconds < best_here) it->second = seconds;
  const int other = current_ == 1 ? full_ : 1;
  auto other_best = best_.find({other, rows});

  if (trial_left_ > 0) {
    // A trial step far slower than the other setting's best ends the trial at once: a
    // descheduled thread costs a time slice per parallel region, and one such step is enough.
    const bool hopeless = other_best != best_.end() && seconds > kSlowFactor * other_best->second;
    if (--trial_left_ > 0 && !hopeless) return;
    trial_left_ = 0;
    // The trial ends: keep whichever setting was faster for this batch size.
    const auto tried = best_.find({current_, rows});
    if (other_best != best_.end() && tried->second > other_best->second) {
      use(other);
      trial_interval_ = std::min(trial_interval_ * 2, kLongestInterval);
    } else {
      trial_interval_ = kFirstInterval;
      log::debug("decode: ", current_, " intra-op thread(s) are faster now");
    }
    next_trial_ = steps_ + trial_interval_;
    slow_streak_ = 0;
    return;
  }
  slow_streak_ = !first && seconds > kSlowFactor * best_here ? slow_streak_ + 1 : 0;
  if (steps_ >= next_trial_ || slow_streak_ >= kSlowSteps) {
    if (slow_streak_ >= kSlowSteps) {
      log::debug("decode: steps slowed to ", seconds * 1e3, " ms (best ", best_here * 1e3,
                 " ms) with ", current_, " thread(s); trying ", other);
      // Its best belongs to a machine that has changed: the trial compares with fresh times.
      best_.erase({current_, rows});
    }
    use(other);
    trial_left_ = kTrialSteps;
    slow_streak_ = 0;
  }
}

}  // namespace stunt::model
