#pragma once
// The register-tiled int4 × float32 kernel's entry points, one per instruction set. The body is
// written once (int4_tiles_body.h) and compiled by each int4_tiles_*.cpp under its own target.

#include <cstdint>

namespace stunt::kernels::detail {

/// One product y = x·Wᵀ over packed int4 weights (Int4PackedWeight's layout), plain pointers.
struct Int4TileProblem {
  /// [rows, in], row-major.
  const float* x = nullptr;
  /// [rows, groups]: Σ of x over each group's inputs, for the zero-point term.
  const float* x_group_sums = nullptr;
  int64_t rows = 0;
  int64_t in = 0;
  const uint8_t* nibbles = nullptr;
  const float* scales = nullptr;
  /// nullptr: symmetric weights, zero 8.
  const float* zeros = nullptr;
  int64_t groups = 0;
  int64_t group_size = 0;
  /// [rows, out], row-major; written, not accumulated into.
  float* y = nullptr;
  int64_t out = 0;
};

/// Computes the output columns of blocks [block_begin, block_end) (16 columns each) for every
/// row. Threads may run disjoint block ranges at once.
using Int4TilesFn = void (*)(const Int4TileProblem& problem, int64_t block_begin,
                             int64_t block_end);

/// Dequantizes blocks [block_begin, block_end) into `out`, [in, (end − begin)·16] row-major:
/// the transposed weights (q − z)·s of those columns. Reads the problem's weight fields only.
using Int4DequantizeFn = void (*)(const Int4TileProblem& problem, int64_t block_begin,
                                  int64_t block_end, float* out);

void int4_tiles_avx512(const Int4TileProblem& problem, int64_t block_begin, int64_t block_end);
void int4_tiles_avx2(const Int4TileProblem& problem, int64_t block_begin, int64_t block_end);
void int4_tiles_portable(const Int4TileProblem& problem, int64_t block_begin, int64_t block_end);

void int4_dequantize_avx512(const Int4TileProblem& problem, int64_t block_begin, int64_t block_end,
                            float* out);
void int4_dequantize_avx2(const Int4TileProblem& problem, int64_t block_begin, int64_t block_end,
                          float* out);
void int4_dequantize_portable(const Int4TileProblem& problem, int64_t block_begin,
                              int64_t block_end, float* out);

}  // namespace stunt::kernels::detail
