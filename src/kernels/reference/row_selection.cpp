#include <ATen/ATen.h>

#include "stunt/kernels/reference.h"

namespace stunt::kernels::reference {

at::Tensor lowest_per_row(const at::Tensor& scores, int64_t k) {
  at::Tensor chosen = at::zeros(scores.sizes(), at::kBool);
  if (k == 0) return chosen;
  const at::Tensor order =
      std::get<1>(scores.sort(/*stable=*/true, /*dim=*/1, /*descending=*/false));
  return chosen.scatter_(1, order.narrow(1, 0, k), true);
}

}  // namespace stunt::kernels::reference
