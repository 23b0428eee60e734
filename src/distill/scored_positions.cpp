#include "detail/scored_positions.h"

#include <ATen/ATen.h>

#include "stunt/core/error.h"

namespace stunt::distill::detail {

void check_keep(const at::Tensor& keep, const at::Tensor& x) {
  if (!keep.defined()) return;
  const auto leading = x.sizes().slice(0, x.dim() - 1);
  STUNT_CHECK_AS(ValueError, keep.sizes() == leading, "the positions to score have shape ",
                 keep.sizes(), " but the tensor compared ", x.sizes(), "; expected ", leading);
}

at::Tensor scored_rows(const at::Tensor& x, const at::Tensor& keep) {
  at::Tensor rows = x.reshape({-1, x.size(-1)});
  if (!keep.defined()) return rows;
  return rows.index_select(0, keep.reshape({-1}).nonzero().squeeze(1));
}

c10::ScalarType loss_dtype(const at::Tensor& x) {
  return x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
}

}  // namespace stunt::distill::detail
