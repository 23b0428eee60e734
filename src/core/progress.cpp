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

/// "45s", "12m05s", "3h20m": a duration as people read an ETA.
std::string duration_text(double seconds) {
  const auto s = static_cast<int64_t>(seconds + 0.5);
  char text[32];
  if (s < 60) {
    std::snprintf(text, sizeof text, "%llds", static_cast<long long>(s));
  } else if (s < 3600) {
    std::snprintf(text, sizeof text, "%lldm%02llds", static_cast<long long>(s / 60),
                  static_cast<long long>(s % 60));
  } else {
    std::snprintf(text, sizeof text, "%lldh%02lldm", static_cast<long long>(s / 3600),
                  static_cast<long long>(s / 60 % 60));
  }
  return text;
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
  // The second quantity's rate, and the time left at the rate so far.
  std::string extra;
  if (!options_.second_unit.empty()) {
    char second[64];
    std::snprintf(second, sizeof second, ", %.1f %s/s",
                  elapsed > 0 ? static_cast<double>(second_done_) / elapsed : 0.0,
                  options_.second_unit.c_str());
    extra += second;
  }
  if (!final_line && total_ > 0 && rate > 0 && done_ < total_) {
    extra += ", ETA " + duration_text(static_cast<double>(total_ - done_) / rate);
  }
  if (mode_ == ProgressOptions::Mode::Bar) {
    std::string bar;
    if (total_ > 0) {
      const int filled =
          static_cast<int>(kBarWidth * std::min<double>(1.0, double(done_) / total_));
      bar = "[" + std::string(filled, '#') + std::string(kBarWidth - filled, '.') + "] ";
    }
    // Trailing spaces clear what a longer previous line left behind.
    std::fprintf(stderr, "\r%s %s%s %s (%.1f %s/s%s, %.1fs)   %s", label_.c_str(), bar.c_str(),
                 counts.c_str(), options_.unit.c_str(), rate, options_.unit.c_str(), extra.c_str(),
                 elapsed, final_line ? "\n" : "");
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
              extra, ", ", static_cast<int64_t>(elapsed), "s)");
  }
}

}  // namespace stunt
