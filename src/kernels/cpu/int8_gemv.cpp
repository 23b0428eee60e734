// The small-batch int8 kernel for AVX512_VNNI (16 columns per register) and AVX_VNNI (8).
#include "int8_gemv.h"

#include <immintrin.h>

namespace stunt::kernels::detail {
namespace {

constexpr int kMaxRows = 4;

/// y = (Σ_k x·w − offset)·s_w·s_x (+ bias) for `Rows` rows and the 16 columns of one block.
/// Independent sums per row, so that few rows still keep several dot products in flight (each
/// waits on the one before it in its chain).
template <int Rows>
constexpr int kChains = Rows == 1 ? 4 : (Rows == 2 ? 2 : 1);

/// Four inputs of the block's sixteen columns into chain `u` of each row.
template <int Rows, int U>
__attribute__((target("avx512f,avx512vnni"), always_inline)) inline void step_avx512(
    const Int8GemvProblem& p, int64_t row0, const int8_t* w, int64_t k4, __m512i (&acc)[Rows][U],
    int u) {
  const __m512i weights = _mm512_loadu_si512(w + k4 * 64);
#pragma GCC unroll 4
  for (int r = 0; r < Rows; ++r) {
    int32_t four;
    __builtin_memcpy(&four, p.x + (row0 + r) * p.in + k4 * 4, 4);
    acc[r][u] = _mm512_dpbusd_epi32(acc[r][u], _mm512_set1_epi32(four), weights);
  }
}

template <int Rows>
__attribute__((target("avx512f,avx512vnni"))) void block_avx512(const Int8GemvProblem& p,
                                                                int64_t row0, int64_t block) {
  constexpr int U = kChains<Rows>;
  __m512i acc[Rows][U];
  for (int r = 0; r < Rows; ++r) {
    for (int u = 0; u < U; ++u) acc[r][u] = _mm512_setzero_si512();
  }
  const int8_t* w = p.weights + block * p.in * 16;
  const int64_t quads = p.in / 4;
  int64_t k4 = 0;
  for (; k4 + U <= quads; k4 += U) {
#pragma GCC unroll 4
    for (int u = 0; u < U; ++u) step_avx512<Rows>(p, row0, w, k4 + u, acc, u);
  }
  for (; k4 < quads; ++k4) step_avx512<Rows>(p, row0, w, k4, acc, 0);
  const int64_t col = block * 16;
  const __m512i offsets = _mm512_loadu_si512(p.offsets + col);
  const __m512 w_scales = _mm512_loadu_ps(p.w_scales + col);
  const __m512 bias = p.bias != nullptr ? _mm512_loadu_ps(p.bias + col) : _mm512_setzero_ps();
  for (int r = 0; r < Rows; ++r) {
    __m512i total = acc[r][0];
    for (int u = 1; u < U; ++u) total = _mm512_add_epi32(total, acc[r][u]);
    // The same float steps as the oneDNN path: the sum times the weight scale, then the row's
    // scale, then the bias.
    const __m512 sum = _mm512_cvtepi32_ps(_mm512_sub_epi32(total, offsets));
    const __m512 y =
        _mm512_mul_ps(_mm512_mul_ps(sum, w_scales), _mm512_set1_ps(p.x_scales[row0 + r]));
    _mm512_storeu_ps(p.y + (row0 + r) * p.out + col, _mm512_add_ps(y, bias));
  }
}

template <int Rows, int U>
__attribute__((target("avx2,avxvnni"), always_inline)) inline void step_avx2(
    const Int8GemvProblem& p, int64_t row0, const int8_t* w, int64_t k4, __m256i (&acc)[Rows][U][2],
    int u) {
  const __m256i low = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + k4 * 64));
  const __m256i high = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + k4 * 64 + 32));
#pragma GCC unroll 4
  for (int r = 0; r < Rows; ++r) {
    int32_t four;
    __builtin_memcpy(&four, p.x + (row0 + r) * p.in + k4 * 4, 4);
    const __m256i x = _mm256_set1_epi32(four);
    acc[r][u][0] = _mm256_dpbusd_avx_epi32(acc[r][u][0], x, low);
    acc[r][u][1] = _mm256_dpbusd_avx_epi32(acc[r][u][1], x, high);
  }
}

template <int Rows>
__attribute__((target("avx2,avxvnni"))) void block_avx2(const Int8GemvProblem& p, int64_t row0,
                                                        int64_t block) {
  constexpr int U = kChains<Rows>;
  __m256i acc[Rows][U][2];
  for (int r = 0; r < Rows; ++r) {
    for (int u = 0; u < U; ++u) acc[r][u][0] = acc[r][u][1] = _mm256_setzero_si256();
  }
  const int8_t* w = p.weights + block * p.in * 16;
  const int64_t quads = p.in / 4;
  int64_t k4 = 0;
  for (; k4 + U <= quads; k4 += U) {
#pragma GCC unroll 4
    for (int u = 0; u < U; ++u) step_avx2<Rows>(p, row0, w, k4 + u, acc, u);
  }
  for (; k4 < quads; ++k4) step_avx2<Rows>(p, row0, w, k4, acc, 0);
  const int64_t col = block * 16;
  for (int half = 0; half < 2; ++half) {
    const __m256i offsets =
        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p.offsets + col + half * 8));
    const __m256 w_scales = _mm256_loadu_ps(p.w_scales + col + half * 8);
    const __m256 bias =
        p.bias != nullptr ? _mm256_loadu_ps(p.bias + col + half * 8) : _mm256_setzero_ps();
    for (int r = 0; r < Rows; ++r) {
      __m256i total = acc[r][0][half];
      for (int u = 1; u < U; ++u) total = _mm256_add_epi32(total, acc[r][u][half]);
      const __m256 sum = _mm256_cvtepi32_ps(_mm256_sub_epi32(total, offsets));
      const __m256 y =
          _mm256_mul_ps(_mm256_mul_ps(sum, w_scales), _mm256_set1_ps(p.x_scales[row0 + r]));
      _mm256_storeu_ps(p.y + (row0 + r) * p.out + col + half * 8, _mm256_add_ps(y, bias));
    }
  }
}

template <void (*Block1)(const Int8GemvProblem&, int64_t, int64_t),
          void (*Block2)(const Int8GemvProblem&, int64_t, int64_t),
          void (*Block3)(const Int8GemvProblem&, int64_t, int64_t),
          void (*Block4)(const Int8GemvProblem&, int64_t, int64_t)>
void run(const Int8GemvProblem& p, int64_t block_begin, int64_t block_end) {
  for (int64_t block = block_begin; block < block_end; ++block) {
    for (int64_t row = 0; row < p.rows; row += kMaxRows) {
      switch (p.rows - row < kMaxRows ? p.rows - row : kMaxRows) {
        case 1:
          Block1(p, row, block);
          break;
        case 2:
          Block2(p, row, block);
          break;
        case 3:
          Block3(p, row, block);
          break;
        default:
          Block4(p, row, block);
      }
    }
  }
}

}  // namespace

void int8_gemv_avx512vnni(const Int8GemvProblem& problem, int64_t block_begin, int64_t block_end) {
  run<block_avx512<1>, block_avx512<2>, block_avx512<3>, block_avx512<4>>(problem, block_begin,
                                                                          block_end);
}

void int8_gemv_avxvnni(const Int8GemvProblem& problem, int64_t block_begin, int64_t block_end) {
  run<block_avx2<1>, block_avx2<2>, block_avx2<3>, block_avx2<4>>(problem, block_begin, block_end);
}

}  // namespace stunt::kernels::detail
