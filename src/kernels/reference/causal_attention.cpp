#include <ATen/ATen.h>

#include <limits>

#include "stunt/kernels/reference.h"

namespace stunt::kernels::reference {

at::Tensor causal_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                            double scale) {
  const int64_t group = q.size(1) / k.size(1);
  const at::Tensor key = k.to(at::kDouble).repeat_interleave(group, 1);
  const at::Tensor value = v.to(at::kDouble).repeat_interleave(group, 1);
  const int64_t length = q.size(2);
  at::Tensor scores = at::matmul(q.to(at::kDouble), key.transpose(-1, -2)) * scale;
  const at::Tensor future = at::ones({length, length}, at::kBool).triu(1);
  scores = scores.masked_fill(future, -std::numeric_limits<double>::infinity());
  return at::matmul(at::softmax(scores, -1), value);
}

}  // namespace stunt::kernels::reference
