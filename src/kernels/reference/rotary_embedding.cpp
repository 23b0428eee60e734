#include <ATen/ATen.h>

#include "stunt/kernels/reference.h"

namespace stunt::kernels::reference {

at::Tensor rotary_embedding(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  const at::Tensor wide = x.to(at::kDouble);
  const int64_t half = x.size(-1) / 2;
  const at::Tensor rotated = at::cat({-wide.narrow(-1, half, half), wide.narrow(-1, 0, half)}, -1);
  return (wide * cos.to(at::kDouble).unsqueeze(1) + rotated * sin.to(at::kDouble).unsqueeze(1));
}

}  // namespace stunt::kernels::reference
