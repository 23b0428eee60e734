#pragma once
/// Which N:M pattern a weight follows: semi-structured sparsity is only usable (sparse tensor
/// cores, 2:4 kernels) when every group holds at most its share of nonzeros.

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>

namespace stunt::kernels {

/// The most nonzeros in any group of m consecutive elements along the last dimension of a 2-D
/// tensor, or -1 when the tensor is not 2-D or m does not divide its rows.
int64_t max_nonzeros_per_group(const at::Tensor& tensor, int64_t m);

/// "2:4" or "4:8" (n of every m zero along the last dimension) for the first of these a 2-D
/// floating tensor follows, or "" when it follows neither (or is not such a tensor).
std::string n_of_m_pattern(const at::Tensor& tensor);

}  // namespace stunt::kernels
