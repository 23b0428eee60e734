#pragma once
// What every distillation loss does first: check the mask of scored positions against the
// tensor's leading dimensions, pick the scored rows, and choose the float type of the math.

#include <ATen/core/Tensor.h>

namespace stunt::distill::detail {

/// ValueError unless `keep` is undefined or has x's shape without its last dimension.
void check_keep(const at::Tensor& keep, const at::Tensor& x);

/// Rows [positions, width] of x [..., width], only those where `keep` is nonzero (all when
/// undefined).
at::Tensor scored_rows(const at::Tensor& x, const at::Tensor& keep);

/// float64 stays float64; everything else is computed in float32.
c10::ScalarType loss_dtype(const at::Tensor& x);

}  // namespace stunt::distill::detail
