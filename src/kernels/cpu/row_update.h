#pragma once
// The inner step of GPTQ's and SparseGPT's column loops: once column i of a row is decided,
// the rest of the row absorbs its error, w[c] -= err * h[c]. It is most of the loops' work.

#include <cstdint>
#include <type_traits>

#include "cpu_features.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif

namespace stunt::kernels::detail {

template <typename T>
inline void subtract_scaled_scalar(T* __restrict w, const T* __restrict h, T err, int64_t n) {
  for (int64_t c = 0; c < n; ++c) w[c] -= err * h[c];
}

#if defined(__x86_64__) && defined(__GNUC__)
// Eight lanes with a multiply and a subtract apiece, rounded as the scalar loop rounds (no FMA):
// the result stays bit-identical to llm-compressor's separate product and update.
__attribute__((target("avx2"))) inline void subtract_scaled_avx2(float* __restrict w,
                                                                 const float* __restrict h,
                                                                 float err, int64_t n) {
  const __m256 e = _mm256_set1_ps(err);
  int64_t c = 0;
  for (; c + 8 <= n; c += 8) {
    const __m256 product = _mm256_mul_ps(e, _mm256_loadu_ps(h + c));
    _mm256_storeu_ps(w + c, _mm256_sub_ps(_mm256_loadu_ps(w + c), product));
  }
  for (; c < n; ++c) w[c] -= err * h[c];
}

#endif

/// w[c] -= err * h[c] for c in [0, n); w and h must not overlap. Float32 (what GPTQ and
/// SparseGPT compute in by default) takes the vector path; float64 stays scalar.
template <typename T>
inline void subtract_scaled(T* w, const T* h, T err, int64_t n) {
#if defined(__x86_64__) && defined(__GNUC__)
  if constexpr (std::is_same_v<T, float>) {
    if (cpu_has_avx2()) {
      subtract_scaled_avx2(w, h, err, n);
      return;
    }
  }
#endif
  subtract_scaled_scalar(w, h, err, n);
}

}  // namespace stunt::kernels::detail
