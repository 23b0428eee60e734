#pragma once
/// Cross-entropy over a vocabulary with its gradient in the same pass. ATen's form writes the
/// [rows, vocab] log-probabilities, keeps them for backward, zeroes a second [rows, vocab]
/// buffer for the NLL gradient and reads both back; for a 49k-token head that is a few percent
/// of a small language model's training step. Here each row is read twice and the gradient
/// written once, while the row is still in cache.

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace stunt::kernels {

struct SoftmaxCrossEntropy {
  /// float64 [rows]: logsumexp(row) - row[target], 0 where the target is ignore_index.
  at::Tensor losses;
  /// float32 [rows, vocab]: (softmax(row) - onehot(target)) · gradient_scale, zero rows where
  /// the target is ignore_index; undefined unless asked for.
  at::Tensor gradient;
};

/// Whether softmax_cross_entropy() takes these: float32 CPU logits [rows, vocab] with
/// contiguous rows, int64 CPU targets [rows].
bool softmax_cross_entropy_supported(const at::Tensor& logits, const at::Tensor& targets);

/// Throws ValueError naming the row for a target outside [0, vocab) that is not ignore_index.
SoftmaxCrossEntropy softmax_cross_entropy(const at::Tensor& logits, const at::Tensor& targets,
                                          int64_t ignore_index, bool with_gradient,
                                          float gradient_scale);

}  // namespace stunt::kernels
