#include "stunt/model/thread_governor.h"

#include <ATen/Parallel.h>
#include <gtest/gtest.h>

namespace stunt::model {
namespace {

/// Runs `steps` steps whose time depends on the thread count the governor chose; returns the
/// thread count of each step.
std::vector<int> drive(DecodeThreadGovernor& g, int steps, double full_ms, double one_ms) {
  std::vector<int> used;
  for (int i = 0; i < steps; ++i) {
    used.push_back(g.threads());
    g.record((g.threads() == 1 ? one_ms : full_ms) * 1e-3, 1);
  }
  return used;
}

int count(const std::vector<int>& v, int value) {
  return static_cast<int>(std::count(v.begin(), v.end(), value));
}

TEST(DecodeThreadGovernor, KeepsEveryThreadWhileTheyAreFaster) {
  at::set_num_threads(2);
  {
    DecodeThreadGovernor g;
    const std::vector<int> used = drive(g, 200, 10, 16);
    // One short trial of one thread at the start, then rare ones that back off.
    EXPECT_EQ(used.front(), 2);
    EXPECT_LE(count(used, 1), 12);
    EXPECT_EQ(used.back(), 2);
  }
  EXPECT_EQ(at::get_num_threads(), 2);
}

TEST(DecodeThreadGovernor, DropsToOneThreadWhenACoreIsTakenAndComesBack) {
  at::set_num_threads(2);
  {
    DecodeThreadGovernor g;
    drive(g, 40, 10, 16);
    EXPECT_EQ(g.threads(), 2);
    // Another process takes a core: steps with two threads take 25x longer.
    const std::vector<int> busy = drive(g, 300, 250, 16);
    EXPECT_EQ(g.threads(), 1);
    // Within a few steps, and trials of two threads stay short and rare.
    EXPECT_LE(count(busy, 2), 3 + 6);
    // The other process ends: two threads win their next trial, which comes after the
    // backed-off interval (at most 1024 steps).
    const std::vector<int> idle = drive(g, 1100, 10, 16);
    EXPECT_EQ(g.threads(), 2);
    EXPECT_GT(count(idle, 2), 700);
  }
  EXPECT_EQ(at::get_num_threads(), 2);
}

TEST(DecodeThreadGovernor, DoesNothingWithOneThread) {
  at::set_num_threads(1);
  DecodeThreadGovernor g;
  const std::vector<int> used = drive(g, 50, 10, 10);
  EXPECT_EQ(count(used, 1), 50);
}

}  // namespace
}  // namespace stunt::model
