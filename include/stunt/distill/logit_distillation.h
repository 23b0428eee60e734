#pragma once
/// Logit distillation: the student's next-token (or class) distribution learns the teacher's.
///
/// With the teacher in memory (logit_distillation_loss), the loss is SparseML's
/// DistillationModifier term and NVIDIA ModelOpt's LogitsDistillationLoss:
///     KL(softmax(t / T) ‖ softmax(s / T)) · T²
/// summed over the vocabulary and averaged over the scored positions. The T² keeps the
/// gradient's size independent of T (Hinton et al. 2015). Offline, from `compress label --kind
/// logits` (top_k_distillation_loss), the teacher is known only by its k most likely tokens per
/// position: its distribution is renormalised over them, tempered the same way, and compared
/// with the student's full distribution at those ids.

#include <ATen/core/Tensor.h>

namespace stunt::distill {

/// KL(softmax(teacher / T) ‖ softmax(student / T)) · T², mean over positions.
/// student_logits, teacher_logits: [..., vocab] of the same shape (the teacher's are detached);
/// keep: the positions to score, shaped like the logits without their last dimension (nonzero =
/// scored), or undefined for all. Differentiable in student_logits; computed in float32 (or
/// float64 when the student's logits are). ValueError for mismatched shapes (naming a vocabulary
/// mismatch), T <= 0, or no scored position.
at::Tensor logit_distillation_loss(const at::Tensor& student_logits,
                                   const at::Tensor& teacher_logits, double temperature,
                                   const at::Tensor& keep = {});

/// The same loss against a teacher stored as its top-k: top_ids [..., k] (integer token ids) and
/// top_log_probs [..., k] (the teacher's log-probabilities of those tokens, any float type), the
/// leading dimensions those of student_logits [..., vocab]. The teacher's tempered distribution
/// is softmax(top_log_probs / T) over the k tokens; the loss is Σ p · (log p − log q) · T² with
/// q the student's tempered softmax over the whole vocabulary, gathered at top_ids.
at::Tensor top_k_distillation_loss(const at::Tensor& student_logits, const at::Tensor& top_ids,
                                   const at::Tensor& top_log_probs, double temperature,
                                   const at::Tensor& keep = {});

}  // namespace stunt::distill
