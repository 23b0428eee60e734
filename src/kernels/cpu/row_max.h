#pragma once
// A row's largest value (NaN when it holds one) and the double sum of eight float lanes, for the
// softmax-shaped kernels (cross-entropy, tempered KL).

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "avx2_exp.h"
#include "cpu_features.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif

namespace stunt::kernels::detail {

inline float row_max_scalar(const float* x, int64_t n) {
  float m = -std::numeric_limits<float>::infinity();
  for (int64_t i = 0; i < n; ++i) {
    if (std::isnan(x[i])) return x[i];
    m = std::max(m, x[i]);
  }
  return m;
}

#if defined(__x86_64__) && defined(__GNUC__)

__attribute__((target("avx2"))) inline double horizontal_sum(__m256 v) {
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, v);
  double sum = 0.0;
  for (float lane : lanes) sum += lane;
  return sum;
}

__attribute__((target("avx2"))) inline float row_max_avx2(const float* x, int64_t n) {
  __m256 m = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
  __m256 nan = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    m = _mm256_max_ps(m, v);
    nan = _mm256_or_ps(nan, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
  }
  if (_mm256_movemask_ps(nan) != 0) return std::numeric_limits<float>::quiet_NaN();
  const float tail = row_max_scalar(x + i, n - i);
  return std::isnan(tail) ? tail : std::max(horizontal_max(m), tail);
}

#endif

/// The row's largest value, or NaN when it holds a NaN (which max alone would skip).
inline float row_max(const float* x, int64_t n) {
#if defined(__x86_64__) && defined(__GNUC__)
  if (cpu_has_avx2()) return row_max_avx2(x, n);
#endif
  return row_max_scalar(x, n);
}

}  // namespace stunt::kernels::detail
