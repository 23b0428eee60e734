#pragma once
/// SparseGPT's inner loop over one block of columns, fused (Frantar and Alistarh 2023,
/// algorithm 1): like GPTQ's, each column is a few operations per row, cheaper in one loop than
/// as tensor operations.

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace stunt::kernels {

/// For each column i of the block in order, and for every row independently (rows run in
/// parallel): a pruned weight becomes 0, a kept one keeps its (updated) value, and the error
/// (w - q) / hinv[i][i] is recorded and subtracted, times hinv's row i, from the row's later
/// columns of the block.
/// - weights [rows, count]: updated in place; on return the block's final values (float or
///   double, contiguous).
/// - hinv [count, count]: the block's part of the upper Cholesky factor of H^-1.
/// - pruned [rows, count] bool: in, the weights already chosen for pruning; out, every pruned
///   weight.
/// - n_of_m: with m > 0, at each column i with i % m == 0 the row's n weights of columns
///   i..i+m-1 with the smallest w² / hinv[j][j]², from their values updated so far, are pruned
///   (weights already pruned count first; ties go to the lower column). m must divide count.
/// - errors [rows, count]: written; losses [rows]: (w - q)² / hinv[i][i]² / 2 added per column.
void sparsegpt_prune_block(at::Tensor& weights, const at::Tensor& hinv, at::Tensor& pruned,
                           int64_t n, int64_t m, at::Tensor& errors, at::Tensor& losses);

}  // namespace stunt::kernels
