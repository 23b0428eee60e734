#include <ATen/ATen.h>

#include "stunt/kernels/reference.h"

namespace stunt::kernels::reference {

at::Tensor column_square_sums(const at::Tensor& x) { return x.to(at::kDouble).pow(2).sum(0); }

}  // namespace stunt::kernels::reference
