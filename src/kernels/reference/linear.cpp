#include <ATen/ATen.h>

#include "stunt/kernels/reference.h"

namespace stunt::kernels::reference {

at::Tensor linear(const at::Tensor& input, const at::Tensor& weight, const at::Tensor& bias) {
  return at::linear(input.to(at::kDouble), weight.to(at::kDouble),
                    bias.defined() ? bias.to(at::kDouble) : at::Tensor());
}

}  // namespace stunt::kernels::reference
