#pragma once
// Training windows for the unit tests: token t + 1 of window i follows from token t, a pattern a
// tiny model learns in a few steps.

#include <cstdint>
#include <vector>

#include "stunt/train/trainer.h"

namespace stunt::test {

/// `count` windows of `seq` ids in 1..11: window i holds (i + 3t) mod 11 + 1 at position t.
inline train::TokenWindowData pattern_windows(int64_t count, int64_t seq) {
  std::vector<std::vector<int64_t>> windows;
  for (int64_t i = 0; i < count; ++i) {
    std::vector<int64_t> ids;
    for (int64_t t = 0; t < seq; ++t) ids.push_back((i + 3 * t) % 11 + 1);
    windows.push_back(ids);
  }
  return train::TokenWindowData(std::move(windows), "pattern windows");
}

}  // namespace stunt::test
