#pragma once
/// Sparsity masks: unstructured or N:M along a weight's input dimension, how to choose them by
/// magnitude, and how to check them.

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>

namespace stunt::prune {

/// How pruned weights may be placed. N:M follows llm-compressor's mask_structure: n of every m
/// consecutive weights along the input dimension are pruned ("2:4" keeps 2 of every 4, the
/// pattern of sparse tensor cores). n == 0 is unstructured ("0:0" or "unstructured").
struct MaskStructure {
  int64_t n = 0;
  int64_t m = 0;
  bool unstructured() const { return n == 0; }
  /// The sparsity the structure itself fixes (n / m; 0 when unstructured).
  double sparsity() const { return unstructured() ? 0.0 : static_cast<double>(n) / m; }
  /// "unstructured" or "N:M".
  std::string to_string() const;
  bool operator==(const MaskStructure& other) const { return n == other.n && m == other.m; }
};

/// Parses "unstructured", "0:0" or "N:M" (0 < N < M); throws ValueError naming `where`.
MaskStructure parse_mask_structure(const std::string& text, const std::string& where);

/// Throws ValueError naming `where` and `layer` when N:M groups do not tile the layer's
/// in_features, or when `sparsity` is outside [0, 1).
void check_prunable(const MaskStructure& structure, double sparsity, int64_t in_features,
                    const std::string& layer, const std::string& where);

/// Pruned positions (bool, true = pruned) for magnitude pruning of `weight` [out, in]:
/// unstructured, the int(numel * sparsity) smallest |w| of the whole tensor (ties go to the
/// lower flat index); N:M, the n smallest |w| of every m along each row (ties likewise).
at::Tensor magnitude_pruned(const at::Tensor& weight, double sparsity,
                            const MaskStructure& structure);

/// Pruned positions (true = pruned) from `scores` [out, in]: for each row, the n lowest of every
/// m consecutive scores (ties go to the lower column).
at::Tensor n_of_m_lowest(const at::Tensor& scores, const MaskStructure& structure);

/// Whether every group of m consecutive weights along each row of `weight` [out, in] holds at
/// most m - n nonzeros (always true when unstructured or when m does not divide the row).
bool satisfies(const at::Tensor& weight, const MaskStructure& structure);

/// The N:M pattern a weight satisfies exactly, among 2:4 and 4:8 (n of every m zero), or
/// unstructured when it satisfies neither.
MaskStructure detect_structure(const at::Tensor& weight);

struct PruneResult {
  /// The pruned (and, for SparseGPT, reconstructed) weight, in the input weight's dtype.
  at::Tensor weight;
  /// Pruned positions, bool [out, in].
  at::Tensor pruned;
  /// SparseGPT: sum of (w - q)² / [H^-1 factor]_jj² / 2 over the layer, what it minimises.
  double loss = 0;
  double dampening_used = 0;
};

/// `weight` with its `pruned` positions zeroed, as a PruneResult.
PruneResult with_pruned(const at::Tensor& weight, at::Tensor pruned);

/// The fraction of zeros in `weight`.
double sparsity_of(const at::Tensor& weight);

}  // namespace stunt::prune
