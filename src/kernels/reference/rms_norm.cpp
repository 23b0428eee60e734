#include <ATen/ATen.h>

#include "stunt/kernels/reference.h"

namespace stunt::kernels::reference {

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  const at::Tensor wide = x.to(at::kDouble);
  return (wide * at::rsqrt(wide.pow(2).mean(-1, /*keepdim=*/true) + eps) * weight.to(at::kDouble));
}

}  // namespace stunt::kernels::reference
