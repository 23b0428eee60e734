#include "stunt/core/progress.h"

#include <unistd.h>

#include <cstdio>

#include "stunt/core/logging.h"

namespace stunt {
namespace {

// A bar redraw more often than this only burns terminal bandwidth.
constexpr double kBarRedrawInterval_s = 0.1;
constexpr int kBarWidth = 30;

double seconds_between(std::chrono::steady_clock::time_point a,
                       std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

}  // namespace

Progress::Progress(std::string label, int64_t total, ProgressOptions options)
    : label_(std::move(label)),
      total_(total),
      options_(std::move(options)),
      mode_(options_.mode),
      start_(std::chrono::steady_clock::now()),
      last_render_(start_) {
  if (mode_ == ProgressOptions::Mode::Auto) {
    mode_ = isatty(STDERR_FILENO) ? ProgressOptions::Mode::Bar : ProgressOptions::Mode::Log;
  }
  if (log::level() > log::Level::Info) mode_ = ProgressOptions::Mode::Silent;
}

Progress::~Progress() {
  try {
    finish();
  } catch (...) {  // a destructor must not throw; losing a progress line is harmless
  }
}

void Progress::advance(int64_t steps) {
  done_ += steps;
  const auto now = std::chrono::steady_clock::now();
  const double since = seconds_between(last_render_, now);
  if ((mode_ == ProgressOptions::Mode::Bar && since >= kBarRedrawInterval_s) ||
      (mode_ == ProgressOptions::Mode::Log && since >= options_.log_interval_s)) {
    last_render_ = now;
    render(false);
  }
}

void Progress::finish() {
  if (finished_) return;
  finished_ = true;
  render(true);
}

void Progress::render(bool final_line) {
  const double elapsed = seconds_between(start_, std::chrono::steady_clock::now());
  const double rate = elapsed > 0 ? static_cast<double>(done_) / elapsed : 0.0;
  std::string counts = total_ > 0 ? str(done_, "/", total_) : str(done_);
  if (mode_ == ProgressOptions::Mode::Bar) {
    std::string bar;
    if (total_ > 0) {
      const int filled =
          static_cast<int>(kBarWidth * std::min<double>(1.0, double(done_) / total_));
      bar = "[" + std::string(filled, '#') + std::string(kBarWidth - filled, '.') + "] ";
    }
    std::fprintf(stderr, "\r%s %s%s %s (%.1f %s/s, %.1fs)%s", label_.c_str(), bar.c_str(),
                 counts.c_str(), options_.unit.c_str(), rate, options_.unit.c_str(), elapsed,
                 final_line ? "\n" : "");
    std::fflush(stderr);
  } else if (mode_ == ProgressOptions::Mode::Log) {
    if (final_line && elapsed < options_.log_interval_s) return;  // short loops stay quiet
    // Slow loops (a few items a minute) show seconds per item rather than "0 items/s".
    char speed[64];
    if (rate >= 1.0 || rate == 0.0) {
      std::snprintf(speed, sizeof speed, "%.0f %s/s", rate, options_.unit.c_str());
    } else {
      std::snprintf(speed, sizeof speed, "%.1f s each", 1.0 / rate);
    }
    log::info(label_, ": ", counts, " ", options_.unit, final_line ? " done" : "", " (", speed,
              ", ", static_cast<int64_t>(elapsed), "s)");
  }
}

}  // namespace stunt
