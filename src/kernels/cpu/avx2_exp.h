#pragma once
// e^x and the maximum of eight floats, for the AVX2 paths of the kernels (softmax, gated
// activations).

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

namespace stunt::kernels::detail {

/// e^x for x <= 0 (Cephes' single-precision method: e^x = 2^j · e^r with j = round(x·log2 e)
/// and |r| <= ln2 / 2, e^r by a degree-6 polynomial; about 1 ulp). Below float's normal range
/// the result is 0.
__attribute__((target("avx2,fma"), always_inline)) inline __m256 exp_nonpositive(__m256 x) {
  const __m256 lowest = _mm256_set1_ps(-87.33654f);
  const __m256 underflow = _mm256_cmp_ps(x, lowest, _CMP_LT_OQ);
  x = _mm256_max_ps(x, lowest);
  const __m256 j = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  // r = x - j·ln2 with ln2 split in two so that the first product is exact.
  __m256 r = _mm256_fnmadd_ps(j, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(j, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  const __m256i exponent =
      _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(j), _mm256_set1_epi32(127)), 23);
  return _mm256_andnot_ps(underflow, _mm256_mul_ps(p, _mm256_castsi256_ps(exponent)));
}

/// The largest of eight floats (NaN lanes are not ordered: callers check for NaN themselves).
__attribute__((target("avx2"), always_inline)) inline float horizontal_max(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
  return _mm_cvtss_f32(m);
}

}  // namespace stunt::kernels::detail

#endif
