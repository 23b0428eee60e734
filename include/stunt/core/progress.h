#pragma once
/// Progress for long loops: a live bar on a terminal, a log line every few seconds otherwise.

#include <chrono>
#include <cstdint>
#include <string>

namespace stunt {

struct ProgressOptions {
  /// Force the bar on or off; by default it is drawn when stderr is a terminal.
  enum class Mode { Auto, Bar, Log, Silent } mode = Mode::Auto;
  /// Seconds between log lines when not drawing a bar.
  double log_interval_s = 10.0;
  /// Unit shown after the counts ("tensors", "samples", "MB").
  std::string unit = "items";
  /// A second quantity counted beside the steps (Progress::count) and shown as its rate
  /// ("tokens" beside "items"); empty for none.
  std::string second_unit;
};

/// Reports the progress of a loop of `total` steps (0 = unknown). Thread-compatible, not
/// thread-safe: advance it from one thread.
class Progress {
 public:
  Progress(std::string label, int64_t total, ProgressOptions options = {});
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  /// Adds `steps` done steps and redraws when due.
  void advance(int64_t steps = 1);
  /// Adds `amount` to the second quantity (ProgressOptions::second_unit); shown at the next
  /// redraw.
  void count(int64_t amount) { second_done_ += amount; }
  /// Marks the loop finished (also done by the destructor).
  void finish();

  int64_t done() const { return done_; }
  ProgressOptions::Mode mode() const { return mode_; }

 private:
  void render(bool final_line);

  std::string label_;
  int64_t total_;
  int64_t done_ = 0;
  int64_t second_done_ = 0;
  ProgressOptions options_;
  ProgressOptions::Mode mode_;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_render_;
  bool finished_ = false;
};

}  // namespace stunt
