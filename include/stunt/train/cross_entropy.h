#pragma once
/// The token-level cross-entropy the language-model tasks train on.

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace stunt::train {

/// Mean cross-entropy of logits [rows, vocab] against targets [rows] over the rows whose target
/// is not `ignore_index`: at::cross_entropy_loss with Reduction::Mean (NaN when every row is
/// ignored), differentiable in logits. Float32 CPU logits take a fused kernel
/// (kernels::softmax_cross_entropy) that computes the gradient during the forward and keeps it
/// instead of the log-probabilities; other inputs go to ATen.
at::Tensor token_cross_entropy(const at::Tensor& logits, const at::Tensor& targets,
                               int64_t ignore_index = -100);

}  // namespace stunt::train
