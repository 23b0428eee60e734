// The int4 tile kernel for the baseline instruction set (SSE2 on x86-64, whatever vectors
// elsewhere), for CPUs without AVX2.
#include "int4_tiles.h"

// The helpers here are internal to this file, so GCC's note that a 64-byte vector is passed
// differently without AVX-512 concerns no caller.
#pragma GCC diagnostic ignored "-Wpsabi"

#include <cstdint>

namespace {
typedef float Vf __attribute__((vector_size(64)));
typedef int32_t Vi __attribute__((vector_size(64)));
__attribute__((always_inline)) inline Vf nibble_values(Vi v) {
  return __builtin_convertvector(v & 15, Vf);
}
#define INT4_MAX_ROWS 2
#define INT4_MAX_BLOCKS 1
#include "int4_tiles_body.h"
}  // namespace

namespace stunt::kernels::detail {

void int4_tiles_portable(const Int4TileProblem& problem, int64_t block_begin, int64_t block_end) {
  run(problem, block_begin, block_end);
}

void int4_dequantize_portable(const Int4TileProblem& problem, int64_t block_begin,
                              int64_t block_end, float* out) {
  dequantize(problem, block_begin, block_end, out);
}

}  // namespace stunt::kernels::detail
