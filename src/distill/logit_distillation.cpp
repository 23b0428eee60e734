#include "stunt/distill/logit_distillation.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <torch/csrc/autograd/custom_function.h>

#include <string>

#include "detail/scored_positions.h"
#include "stunt/core/error.h"
#include "stunt/kernels/tempered_kl.h"

namespace stunt::distill {

namespace {

void check_temperature(double temperature) {
  STUNT_CHECK_AS(ValueError, temperature > 0.0, "distillation temperature ", temperature,
                 "; use a positive temperature (1 compares the distributions as they are, 2 is "
                 "SparseML's default)");
}

/// A tail below this is the rounding of the stored probabilities' sum, not mass: tempered (its
/// T-th root) it would weigh far more than it is. The teacher's becomes 0; the student's
/// kSmallestTail, so that its log stays finite.
constexpr double kRoundingTail = 1e-6;
constexpr double kSmallestTail = 1e-30;

using detail::check_keep;
using detail::loss_dtype;
using detail::scored_rows;

// Σ p · (log p − log q) per scored position (0 · log 0 = 0 where the teacher gives a token no
// probability), averaged, times T²; log_p and log_q are [positions, tokens] at temperature T.
at::Tensor tempered_kl(const at::Tensor& log_p, const at::Tensor& log_q, double temperature) {
  STUNT_CHECK_AS(ValueError, log_p.size(0) > 0,
                 "logit distillation has no position to score (every position is padding)");
  const at::Tensor per_position =
      (at::special_entr(log_p.exp()).neg() - log_p.exp() * log_q).sum(-1);
  return per_position.mean() * (temperature * temperature);
}

/// T² · mean over rows of KL(softmax(t/T) ‖ softmax(s/T)) through the fused kernel, its gradient
/// (T / rows · (q − p)) made in the forward and kept for backward instead of the softmaxes.
struct FusedTemperedKl : torch::autograd::Function<FusedTemperedKl> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& student,
                            const at::Tensor& teacher, double temperature) {
    const auto rows = static_cast<double>(student.size(0));
    const bool with_gradient = student.requires_grad();
    kernels::TemperedKl result = kernels::tempered_kl(student, teacher, temperature, with_gradient,
                                                      static_cast<float>(temperature / rows));
    if (with_gradient) ctx->save_for_backward({result.gradient});
    return (result.losses.sum() * (temperature * temperature / rows)).to(at::kFloat);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    const at::Tensor gradient = ctx->get_saved_variables()[0];
    const at::Tensor& upstream = grad_outputs[0];
    at::Tensor grad_student =
        upstream.item<float>() == 1.0f ? gradient : gradient * upstream.to(at::kFloat);
    return {grad_student, at::Tensor(), at::Tensor()};
  }
};

}  // namespace

at::Tensor logit_distillation_loss(const at::Tensor& student_logits,
                                   const at::Tensor& teacher_logits, double temperature,
                                   const at::Tensor& keep) {
  check_temperature(temperature);
  STUNT_CHECK_AS(ValueError, student_logits.dim() >= 1 && teacher_logits.dim() >= 1,
                 "logit distillation compares logits [..., vocab]; got ", student_logits.sizes(),
                 " and ", teacher_logits.sizes());
  STUNT_CHECK_AS(ValueError, student_logits.size(-1) == teacher_logits.size(-1),
                 "the student scores ", student_logits.size(-1), " tokens but the teacher ",
                 teacher_logits.size(-1),
                 "; logit distillation needs one vocabulary (use sequence-level distillation on "
                 "the teacher's generations between different tokenizers)");
  STUNT_CHECK_AS(ValueError, student_logits.sizes() == teacher_logits.sizes(),
                 "the student's logits have shape ", student_logits.sizes(), " but the teacher's ",
                 teacher_logits.sizes(), "; distillation compares the same positions");
  check_keep(keep, student_logits);
  const c10::ScalarType dtype = loss_dtype(student_logits);
  const at::Tensor student_rows = scored_rows(student_logits.to(dtype), keep);
  const at::Tensor teacher_rows = scored_rows(teacher_logits.detach().to(dtype), keep);
  if (kernels::tempered_kl_supported(student_rows, teacher_rows) && student_rows.size(0) > 0) {
    if (!at::GradMode::is_enabled() || !student_rows.requires_grad()) {
      const kernels::TemperedKl result =
          kernels::tempered_kl(student_rows, teacher_rows, temperature, false, 0.0f);
      return (result.losses.mean() * (temperature * temperature)).to(at::kFloat);
    }
    return FusedTemperedKl::apply(student_rows, teacher_rows, temperature);
  }
  const at::Tensor student = student_rows / temperature;
  const at::Tensor teacher = teacher_rows / temperature;
  return tempered_kl(at::log_softmax(teacher, -1), at::log_softmax(student, -1), temperature);
}

at::Tensor top_k_distillation_loss(const at::Tensor& student_logits, const at::Tensor& top_ids,
                                   const at::Tensor& top_log_probs, double temperature,
                                   const at::Tensor& keep, double stored_temperature) {
  check_temperature(temperature);
  const bool stored_tempered = stored_temperature == temperature;
  STUNT_CHECK_AS(ValueError, stored_tempered || stored_temperature == 1.0,
                 "the teacher's log-probabilities were stored at temperature ", stored_temperature,
                 " but are distilled at ", temperature,
                 "; distill at the labels' temperature, or relabel at ", temperature,
                 " (compress label --logits-temperature) or at 1");
  STUNT_CHECK_AS(ValueError, top_ids.sizes() == top_log_probs.sizes(),
                 "the stored top-k ids have shape ", top_ids.sizes(),
                 " but their log-probabilities ", top_log_probs.sizes(), "; they come in pairs");
  STUNT_CHECK_AS(ValueError,
                 student_logits.dim() == top_ids.dim() &&
                     student_logits.sizes().slice(0, student_logits.dim() - 1) ==
                         top_ids.sizes().slice(0, top_ids.dim() - 1),
                 "the student's logits have shape ", student_logits.sizes(),
                 " but the teacher's stored top-k ", top_ids.sizes(),
                 "; expected the same positions (labels of these very items)");
  STUNT_CHECK_AS(ValueError, !c10::isFloatingType(top_ids.scalar_type()),
                 "the stored top-k ids are ", top_ids.scalar_type(), "; expected integer ids");
  const int64_t vocab = student_logits.size(-1);
  if (top_ids.numel() > 0) {
    const int64_t lowest = top_ids.min().item<int64_t>();
    const int64_t highest = top_ids.max().item<int64_t>();
    STUNT_CHECK_AS(ValueError, lowest >= 0 && highest < vocab, "the teacher's stored token ids ",
                   "run from ", lowest, " to ", highest, " but the student scores ", vocab,
                   " tokens; the labels come from a teacher with another vocabulary");
  }
  check_keep(keep, student_logits);
  const c10::ScalarType dtype = loss_dtype(student_logits);
  const at::Tensor student = scored_rows(student_logits.to(dtype), keep);
  const at::Tensor ids = scored_rows(top_ids.to(at::kLong), keep);
  const at::Tensor teacher = scored_rows(top_log_probs.detach().to(dtype), keep);
  at::Tensor teacher_tail = 1.0 - teacher.exp().sum(-1, true);
  teacher_tail = teacher_tail.masked_fill(teacher_tail < kRoundingTail, 0.0);
  if (stored_tempered) {
    // The teacher's tempered masses are stored: the tail's is exact, and the student's is taken
    // from its own tempered distribution the same way. (The log_softmax only absorbs the
    // rounding of the stored values: the k + 1 masses already sum to 1. At T = 1 this is the
    // branch below.)
    const at::Tensor student_top = at::log_softmax(student / temperature, -1).gather(1, ids);
    at::Tensor student_tail = 1.0 - student_top.exp().sum(-1, true);
    student_tail = student_tail.masked_fill(student_tail < kRoundingTail, kSmallestTail).log();
    return tempered_kl(at::log_softmax(at::cat({teacher, teacher_tail.log()}, -1), -1),
                       at::log_softmax(at::cat({student_top, student_tail}, -1), -1), temperature);
  }
  // Stored at T = 1: both distributions coarsened alike to k + 1 categories, the stored tokens
  // and the rest of the vocabulary as one "tail" token, then tempered alike. The teacher's
  // tempered tail cannot be known from its top-k; renormalising over the k tokens, or tempering
  // only the student's tail token by token, would tell the student to put far less mass outside
  // them than it does, and make it over-confident.
  const at::Tensor student_top = at::log_softmax(student, -1).gather(1, ids);
  at::Tensor student_tail = 1.0 - student_top.exp().sum(-1, true);
  student_tail = student_tail.masked_fill(student_tail < kRoundingTail, kSmallestTail).log();
  const at::Tensor teacher_buckets = at::cat({teacher, teacher_tail.log()}, -1) / temperature;
  const at::Tensor student_buckets = at::cat({student_top, student_tail}, -1) / temperature;
  return tempered_kl(at::log_softmax(teacher_buckets, -1), at::log_softmax(student_buckets, -1),
                     temperature);
}

}  // namespace stunt::distill
