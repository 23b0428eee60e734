#include "stunt/distill/hidden_state_loss.h"

#include <ATen/ATen.h>

#include "detail/scored_positions.h"
#include "stunt/core/error.h"

namespace stunt::distill {

HiddenComparison parse_hidden_comparison(const std::string& name, const std::string& where) {
  // llm-compressor's l2_distance (a sum over features) and cosine_similarity (the similarity
  // itself, not a distance) mean other things, so their names are not taken as these.
  if (name == "mse") return HiddenComparison::Mse;
  if (name == "normalized_mse") return HiddenComparison::NormalizedMse;
  if (name == "cosine") return HiddenComparison::Cosine;
  if (name == "square_head") return HiddenComparison::SquareHead;
  throw ValueError(str(where, ": comparison '", name,
                       "' is not known; use mse, normalized_mse, cosine (1 - cosine similarity) "
                       "or square_head"));
}

const char* to_string(HiddenComparison comparison) {
  switch (comparison) {
    case HiddenComparison::Mse:
      return "mse";
    case HiddenComparison::NormalizedMse:
      return "normalized_mse";
    case HiddenComparison::Cosine:
      return "cosine";
    case HiddenComparison::SquareHead:
      return "square_head";
  }
  return "?";
}

at::Tensor hidden_state_loss(const at::Tensor& student, const at::Tensor& teacher,
                             HiddenComparison comparison, const at::Tensor& keep, double eps) {
  STUNT_CHECK_AS(ValueError, student.dim() >= 1 && student.sizes() == teacher.sizes(),
                 "the student's hidden states have shape ", student.sizes(), " but the teacher's ",
                 teacher.sizes(),
                 "; they must match (give the student a projection when only the widths differ)");
  detail::check_keep(keep, student);
  const c10::ScalarType dtype = detail::loss_dtype(student);
  const at::Tensor s = detail::scored_rows(student.to(dtype), keep);
  const at::Tensor t = detail::scored_rows(teacher.detach().to(dtype), keep);
  STUNT_CHECK_AS(ValueError, s.size(0) > 0,
                 "hidden-state distillation has no position to score (every position is padding)");
  switch (comparison) {
    case HiddenComparison::Mse:
      return (s - t).pow(2).mean();
    case HiddenComparison::NormalizedMse:
      return (s - t).pow(2).mean() / (t.pow(2).mean() + eps);
    case HiddenComparison::Cosine:
      return (1.0 - at::cosine_similarity(s, t, /*dim=*/1, eps)).mean();
    case HiddenComparison::SquareHead:
      return (s - t).pow(2).sum() / (t.pow(2).sum() + eps);
  }
  return {};
}

}  // namespace stunt::distill
