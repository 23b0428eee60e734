#pragma once
/// Hidden-state distillation: a student layer's output learns a teacher layer's (SparseML's
/// PerLayerDistillationModifier, llm-compressor's OutputDistillationModifier comparisons).

#include <ATen/core/Tensor.h>

#include <string>

namespace stunt::distill {

enum class HiddenComparison {
  /// mean((s − t)²) over the scored positions and features.
  Mse,
  /// SparseML's `normalize`: mse / (mean(t²) + eps).
  NormalizedMse,
  /// mean over scored positions of 1 − cos(s, t) along the features.
  Cosine,
  /// ‖t − s‖² / ‖t‖² over the scored positions and features (Kurtić et al.'s SquareHead).
  SquareHead,
};

/// "mse", "normalized_mse", "cosine", "square_head"; ValueError naming `where` and the known
/// names otherwise (llm-compressor's "l2_distance" and "cosine_similarity" compute other things).
HiddenComparison parse_hidden_comparison(const std::string& name, const std::string& where);
const char* to_string(HiddenComparison comparison);

/// The comparison of student [..., features] with teacher (same shape, detached) over the
/// positions where `keep` (the leading shape) is nonzero, or all when undefined. Differentiable
/// in student; float32 (float64 stays). ValueError for shapes that differ (a projection is the
/// fix when only the widths do) or no scored position.
at::Tensor hidden_state_loss(const at::Tensor& student, const at::Tensor& teacher,
                             HiddenComparison comparison, const at::Tensor& keep = {},
                             double eps = 1e-6);

}  // namespace stunt::distill
