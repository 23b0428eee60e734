#pragma once
/// Logit distillation: the student's next-token (or class) distribution learns the teacher's.
///
/// With the teacher in memory (logit_distillation_loss), the loss is SparseML's
/// DistillationModifier term and NVIDIA ModelOpt's LogitsDistillationLoss:
///     KL(softmax(t / T) ‖ softmax(s / T)) · T²
/// summed over the vocabulary and averaged over the scored positions. The T² keeps the
/// gradient's size independent of T (Hinton et al. 2015). Offline, from `compress label --kind
/// logits` (top_k_distillation_loss), the teacher is known only by its k most likely tokens per
/// position: both distributions are coarsened alike to k + 1 categories, the stored tokens and
/// the rest of the vocabulary as one (its mass is 1 minus the stored tokens'). Labels stored at
/// the distillation temperature give the exact KL between the coarsened tempered distributions;
/// labels stored at T = 1 are tempered after coarsening, which underestimates the tail. With
/// every token stored either is the in-memory loss.

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
/// leading dimensions those of student_logits [..., vocab]. stored_temperature is the temperature
/// the teacher's log-probabilities were taken at (`compress label --logits-temperature`).
///
/// Stored at T itself, they are the top-k of log softmax(teacher / T): with c(x) = [x, log(1 −
/// Σ exp(x))] (a tail below 1e-6 is rounding: 0), p = exp(c(top_log_probs)) and q = exp(c(log
/// softmax(student / T) at top_ids)), both exact masses of the tempered distributions, and the
/// loss is Σ p · (log p − log q) · T² over the k + 1 categories.
///
/// Stored at 1 and distilled at another T, the tempered tail cannot be known: p = softmax(c(
/// top_log_probs) / T) and q = softmax(c(log softmax(student) at top_ids) / T), both coarsened
/// to k + 1 categories before tempering. ValueError for any other stored temperature.
at::Tensor top_k_distillation_loss(const at::Tensor& student_logits, const at::Tensor& top_ids,
                                   const at::Tensor& top_log_probs, double temperature,
                                   const at::Tensor& keep = {}, double stored_temperature = 1.0);

}  // namespace stunt::distill
