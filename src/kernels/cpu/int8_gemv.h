#pragma once
// The small-batch int8 kernel (decode): u8 × s8 dot products (VNNI's vpdpbusd) over weights
// laid out so that one 64-byte load holds four inputs of sixteen output columns. Exact int32
// sums, as oneDNN's; for few rows it skips oneDNN's per-call setup, which costs more than the
// product at a decode step's sizes.

#include <cstdint>

namespace stunt::kernels::detail {

struct Int8GemvProblem {
  /// [rows, in]: activations q + 128.
  const uint8_t* x = nullptr;
  /// [rows]: activation scales.
  const float* x_scales = nullptr;
  int64_t rows = 0;
  int64_t in = 0;
  /// [out / 16, in / 4, 16, 4]: byte (b, k4, j, i) is the weight of column 16b + j, input
  /// 4·k4 + i.
  const int8_t* weights = nullptr;
  /// [out]: 128 · Σ_k w[j, k], the offset the unsigned activations add.
  const int32_t* offsets = nullptr;
  /// [out]: weight scales.
  const float* w_scales = nullptr;
  /// [out] or nullptr.
  const float* bias = nullptr;
  /// [rows, out].
  float* y = nullptr;
  int64_t out = 0;
};

using Int8GemvFn = void (*)(const Int8GemvProblem& problem, int64_t block_begin, int64_t block_end);

void int8_gemv_avx512vnni(const Int8GemvProblem& problem, int64_t block_begin, int64_t block_end);
void int8_gemv_avxvnni(const Int8GemvProblem& problem, int64_t block_begin, int64_t block_end);

}  // namespace stunt::kernels::detail
