#pragma once
/// KL(softmax(t/T) ‖ softmax(s/T)) per row with its gradient in the student in the same pass.
/// Written with ATen ops, logit distillation divides both [rows, vocab] logits by T, takes two
/// log-softmaxes, exponentiates, multiplies and sums, and autograd keeps several of those
/// [rows, vocab] tensors for backward: for a 49k-token head, a large share of a distillation
/// step. Here each row pair is read a few times while in cache and the gradient written once.

#include <ATen/core/Tensor.h>

namespace stunt::kernels {

struct TemperedKl {
  /// float64 [rows]: Σ p (log p − log q) with p = softmax(teacher/T), q = softmax(student/T)
  /// (0 · log 0 = 0).
  at::Tensor losses;
  /// float32 [rows, vocab]: (q − p) · gradient_scale; undefined unless asked for. The gradient
  /// of the row's KL in the student's logits is (q − p) / T.
  at::Tensor gradient;
};

/// Whether tempered_kl() takes these: float32 CPU [rows, vocab] student and teacher of the same
/// shape, rows contiguous.
bool tempered_kl_supported(const at::Tensor& student, const at::Tensor& teacher);

TemperedKl tempered_kl(const at::Tensor& student, const at::Tensor& teacher, double temperature,
                       bool with_gradient, float gradient_scale);

}  // namespace stunt::kernels
