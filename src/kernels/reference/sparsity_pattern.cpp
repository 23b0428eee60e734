#include "stunt/kernels/sparsity_pattern.h"

#include <ATen/ATen.h>

namespace stunt::kernels {

int64_t max_nonzeros_per_group(const at::Tensor& tensor, int64_t m) {
  if (tensor.dim() != 2 || m <= 0 || tensor.size(1) % m != 0 || tensor.numel() == 0) return -1;
  return tensor.ne(0).reshape({-1, m}).sum(1).max().item<int64_t>();
}

std::string n_of_m_pattern(const at::Tensor& tensor) {
  if (!at::isFloatingType(tensor.scalar_type())) return "";
  for (const auto& [n, m] : {std::pair<int64_t, int64_t>{2, 4}, {4, 8}}) {
    const int64_t most = max_nonzeros_per_group(tensor, m);
    if (most >= 0 && most <= m - n) return std::to_string(n) + ":" + std::to_string(m);
  }
  return "";
}

}  // namespace stunt::kernels
