#pragma once
// What the whole-model benchmarks share.

#include <algorithm>
#include <vector>

namespace stunt::bench {

/// Median of `samples`; the mean of the middle two for an even count.
inline double median(std::vector<double> samples) {
  std::sort(samples.begin(), samples.end());
  const size_t n = samples.size();
  return n % 2 == 1 ? samples[n / 2] : 0.5 * (samples[n / 2 - 1] + samples[n / 2]);
}

}  // namespace stunt::bench
