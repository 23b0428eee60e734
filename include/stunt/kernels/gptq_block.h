#pragma once
/// GPTQ's inner loop over one block of columns, fused (Frantar et al. 2022, algorithm 1): the
/// per-column work is a few operations on each row, which as tensor operations would cost more
/// in dispatch than in arithmetic.

#include <ATen/core/Tensor.h>

#include "stunt/kernels/quantize.h"

namespace stunt::kernels {

/// For each column i of the block in order, and for every row independently (rows run in
/// parallel): the weight is fake-quantized exactly as fake_quantize() does it (x / scale,
/// + zero point, clamp, round half to even or fp8 rounding, then dequantized), the error
/// (w - q) / hinv[i][i] is recorded and subtracted, times hinv's row i, from the row's later
/// columns of the block.
/// - weights [rows, count]: updated in place (contiguous, float or double).
/// - hinv [count, count]: the block's part of the upper Cholesky factor of H^-1 (contiguous).
/// - scales, zero_points [rows, count]: each column's grid (zero_points undefined: symmetric).
/// - pruned [rows, count] bool, or undefined: weights held at zero (a sparsity mask), whose
///   whole value counts as their error.
/// - quantized, errors [rows, count]: written; losses [rows]: err^2 / 2 added per column.
/// Every tensor has the weights' dtype.
void gptq_quantize_block(at::Tensor& weights, const at::Tensor& hinv, const at::Tensor& scales,
                         const at::Tensor& zero_points, const at::Tensor& pruned,
                         const QuantRange& range, at::Tensor& quantized, at::Tensor& errors,
                         at::Tensor& losses);

}  // namespace stunt::kernels
