#include <ATen/ATen.h>

#include "stunt/kernels/reference.h"

namespace stunt::kernels::reference {

at::Tensor gated_silu(const at::Tensor& gate, const at::Tensor& up) {
  return (at::silu(gate.to(at::kDouble)) * up.to(at::kDouble));
}

}  // namespace stunt::kernels::reference
