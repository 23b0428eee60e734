#pragma once
/// Magnitude pruning: the weights of smallest absolute value go, data-free.

#include <ATen/core/Tensor.h>

#include <string>

#include "stunt/prune/mask.h"

namespace stunt::prune {

/// Magnitude pruning (llm-compressor's MagnitudePruningModifier at its final sparsity): the
/// smallest |w| of the whole layer, or the n smallest of every m.
PruneResult magnitude_prune(const at::Tensor& weight, double sparsity,
                            const MaskStructure& structure, const std::string& layer);

}  // namespace stunt::prune
