#include "stunt/distill/attention_loss.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <cmath>
#include <limits>

#include "detail/scored_positions.h"
#include "stunt/core/error.h"

namespace stunt::distill {
namespace {

/// "H heads over Q queries and K keys" for messages.
std::string describe(const at::Tensor& maps) {
  if (maps.dim() != 4) return stunt::str("shape ", maps.sizes());
  return str(maps.size(1), " heads over ", maps.size(2), " queries and ", maps.size(3), " keys");
}

/// ValueError unless keep is undefined or [batch, positions].
void check_token_mask(const at::Tensor& keep, int64_t batch, int64_t positions) {
  if (!keep.defined()) return;
  STUNT_CHECK_AS(ValueError, keep.dim() == 2 && keep.size(0) == batch && keep.size(1) == positions,
                 "the mask of scored positions has shape ", keep.sizes(), "; expected [", batch,
                 ", ", positions, "] (batch, positions)");
}

void check_maps(const at::Tensor& student, const at::Tensor& teacher, const at::Tensor& keep) {
  STUNT_CHECK_AS(ValueError, student.dim() == 4 && student.size(2) == student.size(3),
                 "attention distillation takes self-attention maps [batch, heads, positions, "
                 "positions]; the student's have ",
                 describe(student));
  STUNT_CHECK_AS(ValueError, student.sizes() == teacher.sizes(), "the student's attention has ",
                 describe(student), " but the teacher's ", describe(teacher),
                 "; attention is compared head by head on the same tokens, so both need as many "
                 "heads (pair layers whose head counts agree)");
  check_token_mask(keep, student.size(0), student.size(2));
}

/// keep as float [batch, positions] in `dtype`, all ones when undefined.
at::Tensor token_weights(const at::Tensor& keep, const at::Tensor& maps, c10::ScalarType dtype) {
  if (!keep.defined()) return at::ones({maps.size(0), maps.size(2)}, maps.options().dtype(dtype));
  return (keep != 0).to(dtype);
}

}  // namespace

at::Tensor attention_map_mse(const at::Tensor& student, const at::Tensor& teacher,
                             const at::Tensor& keep) {
  check_maps(student, teacher, keep);
  const c10::ScalarType dtype = detail::loss_dtype(student);
  const at::Tensor tokens = token_weights(keep, student, dtype);
  // [batch, 1, queries, keys]: an entry counts when its query and its key are tokens.
  const at::Tensor weights = (tokens.unsqueeze(2) * tokens.unsqueeze(1)).unsqueeze(1);
  const at::Tensor count = weights.sum() * static_cast<double>(student.size(1));
  STUNT_CHECK_AS(ValueError, count.item<double>() > 0,
                 "attention distillation has no position to score (every position is padding)");
  const at::Tensor difference = student.to(dtype) - teacher.detach().to(dtype);
  return (difference.pow(2) * weights).sum() / count;
}

at::Tensor attention_kl(const at::Tensor& student, const at::Tensor& teacher,
                        const at::Tensor& keep) {
  check_maps(student, teacher, keep);
  const c10::ScalarType dtype = detail::loss_dtype(student);
  const at::Tensor rows = token_weights(keep, student, dtype).unsqueeze(1);  // [batch, 1, queries]
  const at::Tensor count = rows.sum() * static_cast<double>(student.size(1));
  STUNT_CHECK_AS(ValueError, count.item<double>() > 0,
                 "attention distillation has no position to score (every position is padding)");
  const at::Tensor t = teacher.detach().to(dtype);
  // A key the teacher gives no weight adds nothing (xlogy(0, ·) = 0); the clamp keeps a masked
  // key's log finite, so that its zero weight also gives it a zero gradient.
  const double tiny =
      dtype == at::kDouble ? std::numeric_limits<double>::min() : std::numeric_limits<float>::min();
  const at::Tensor log_s = at::log(student.to(dtype).clamp_min(tiny));
  const at::Tensor kl = (at::xlogy(t, t) - t * log_s).sum(-1);  // [batch, heads, queries]
  return (kl * rows).sum() / count;
}

at::Tensor value_relation(const at::Tensor& values, const at::Tensor& keep) {
  STUNT_CHECK_AS(ValueError, values.dim() == 4,
                 "value relations take values [batch, heads, positions, head_dim]; got shape ",
                 values.sizes());
  const c10::ScalarType dtype = detail::loss_dtype(values);
  const at::Tensor v = values.to(dtype);
  at::Tensor scores =
      at::matmul(v, v.transpose(-2, -1)) / std::sqrt(static_cast<double>(values.size(3)));
  if (keep.defined()) {
    check_token_mask(keep, values.size(0), values.size(2));
    const at::Tensor padding = (keep == 0).unsqueeze(1).unsqueeze(2);  // [batch, 1, 1, keys]
    scores = scores.masked_fill(padding, -std::numeric_limits<double>::infinity());
    // A row of padding only (a batch row with no token) would be all -inf: leave its scores at 0.
    scores = scores.masked_fill(padding.all(-1, /*keepdim=*/true), 0.0);
  }
  return at::softmax(scores, -1);
}

at::Tensor minilm_loss(const at::Tensor& student_probabilities,
                       const at::Tensor& teacher_probabilities, const at::Tensor& student_values,
                       const at::Tensor& teacher_values, const at::Tensor& keep) {
  check_maps(student_probabilities, teacher_probabilities, keep);
  STUNT_CHECK_AS(ValueError,
                 student_values.dim() == 4 && teacher_values.dim() == 4 &&
                     student_values.sizes().slice(0, 3) == teacher_values.sizes().slice(0, 3),
                 "the student's values have shape ", student_values.sizes(), " and the teacher's ",
                 teacher_values.sizes(),
                 "; value relations are compared head by head, so both need as many heads over "
                 "the same positions (the head widths may differ)");
  const at::Tensor student_relation = value_relation(student_values, keep);
  at::Tensor teacher_relation;
  {
    c10::NoGradGuard no_grad;
    teacher_relation = value_relation(teacher_values.detach(), keep);
  }
  return attention_kl(student_probabilities, teacher_probabilities, keep) +
         attention_kl(student_relation, teacher_relation, keep);
}

}  // namespace stunt::distill
