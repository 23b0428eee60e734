#pragma once
// Inputs and errors for tests of layer-wise compression (GPTQ, SparseGPT).

#include <ATen/ATen.h>

#include <cmath>
#include <cstdint>

namespace stunt::test {

/// Inputs with correlated channels of very different energy, as real activations have.
inline at::Tensor correlated_inputs(int64_t tokens, int64_t channels) {
  at::manual_seed(0);
  const at::Tensor mix = at::randn({channels, channels}) / std::sqrt(static_cast<double>(channels));
  const at::Tensor energy = at::linspace(0.1, 3.0, channels);
  return at::matmul(at::randn({tokens, channels}) * energy, mix) +
         0.5 * at::randn({tokens, channels});
}

/// Squared error of the layer output x qᵀ against x wᵀ.
inline double output_error(const at::Tensor& x, const at::Tensor& w, const at::Tensor& q) {
  return (at::matmul(x, w.t()) - at::matmul(x, q.t())).pow(2).sum().item<double>();
}

}  // namespace stunt::test
