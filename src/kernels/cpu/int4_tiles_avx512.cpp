// The int4 tile kernel for AVX-512 (F, BW, VL) with FMA: a 16-float vector is one register; 4 rows
// × 2 blocks of accumulators.
#include "int4_tiles.h"

// The helpers here are internal to this file, so GCC's note that a 64-byte vector is passed
// differently without AVX-512 concerns no caller.
#pragma GCC diagnostic ignored "-Wpsabi"
// GCC 12 flags the undefined pass-through operand inside its own _mm512_permutexvar_ps (a
// known false positive).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <cstdint>

#pragma GCC target("avx512f,avx512bw,avx512vl,avx2,fma")
#include <immintrin.h>

namespace {
typedef float Vf __attribute__((vector_size(64)));
typedef int32_t Vi __attribute__((vector_size(64)));
__attribute__((always_inline)) inline Vf nibble_values(Vi v) {
  // vpermps reads the low four bits of each index lane: one instruction converts.
  const __m512 table = _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  return reinterpret_cast<Vf>(_mm512_permutexvar_ps(reinterpret_cast<__m512i>(v), table));
}
#define INT4_MAX_ROWS 6
#define INT4_MAX_BLOCKS 2
#include "int4_tiles_body.h"
}  // namespace

namespace stunt::kernels::detail {

void int4_tiles_avx512(const Int4TileProblem& problem, int64_t block_begin, int64_t block_end) {
  run(problem, block_begin, block_end);
}

void int4_dequantize_avx512(const Int4TileProblem& problem, int64_t block_begin, int64_t block_end,
                            float* out) {
  dequantize(problem, block_begin, block_end, out);
}

}  // namespace stunt::kernels::detail
