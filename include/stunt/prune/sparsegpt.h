#pragma once
/// SparseGPT (Frantar and Alistarh 2023): prunes a weight block of columns by block and
/// reconstructs the layer's output by spreading each pruned weight's error over the columns
/// not yet visited, weighted by the inverse Hessian of the layer's inputs, as GPTQ does for
/// rounding errors.

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>

#include "stunt/kernels/hessian.h"
#include "stunt/prune/mask.h"

namespace stunt::prune {

struct SparseGptOptions {
  /// Fraction to prune (unstructured; N:M fixes its own).
  double sparsity = 0.5;
  MaskStructure structure;
  int64_t block_size = 128;
  double dampening_frac = 0.01;
  /// Keep the weight's existing zeros pruned (and count them toward the sparsity).
  bool preserve_mask = false;
  /// Names the layer in warnings and errors.
  std::string layer;  /// Shares the inverse Hessian factor with the layers before that read the
                      /// same inputs, or
  /// null: each layer factors its own.
  kernels::InverseFactorCache* factor_cache = nullptr;
};

/// Prunes `weight` [out, in] given the Hessian [in, in] of its inputs (consumed). As
/// llm-compressor chooses them: an unstructured mask is picked per block of columns over all
/// rows at once, pruning the weights with w² / [U]_jj² at or below the int(n * sparsity)-th
/// smallest (so slightly more than `sparsity`); N:M prunes the n smallest scores of every m
/// columns of each row, from the weights as updated when the group is reached.
PruneResult sparsegpt_prune(const at::Tensor& weight, at::Tensor hessian,
                            const SparseGptOptions& options);

}  // namespace stunt::prune
