#pragma once
// Checks shared by the tests of float32 linear kernels (oneDNN, MKL-packed): the shapes they
// run on and their error against float64.

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <functional>
#include <vector>

namespace stunt::test {

/// One product: input shape [..., in], out features, with or without a bias.
struct FloatLinearCase {
  std::vector<int64_t> input;
  int64_t out;
  bool bias;
};

/// Runs `linear(x, weight, bias)` on random tensors of each case and expects it within 1e-6 of
/// float64 relative to the sum of the products' magnitudes: each output sums `in` products of
/// unit-variance values, so float32 rounding stays within a few ulps of it. With
/// `also_aten`, the same bound holds against at::linear.
inline void expect_float_linear_close(
    const std::vector<FloatLinearCase>& cases,
    const std::function<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&)>&
        linear,
    bool also_aten = false) {
  for (const FloatLinearCase& c : cases) {
    const at::Tensor x = at::randn(c.input);
    const at::Tensor weight = at::randn({c.out, c.input.back()});
    const at::Tensor bias = c.bias ? at::randn({c.out}) : at::Tensor();
    const at::Tensor got = linear(x, weight, bias);
    at::Tensor want = at::matmul(x.to(at::kDouble), weight.to(at::kDouble).t());
    if (c.bias) want = want + bias.to(at::kDouble);
    ASSERT_EQ(got.sizes(), want.sizes());
    ASSERT_EQ(got.scalar_type(), at::kFloat);
    const at::Tensor magnitude =
        at::matmul(x.to(at::kDouble).abs(), weight.to(at::kDouble).abs().t()) + 1e-30;
    EXPECT_LT(((got.to(at::kDouble) - want).abs() / magnitude).max().item<double>(), 1e-6)
        << "input " << x.sizes() << " weight " << weight.sizes();
    if (also_aten) {
      const at::Tensor aten = at::linear(x, weight, bias).to(at::kDouble);
      EXPECT_LT(((got.to(at::kDouble) - aten).abs() / magnitude).max().item<double>(), 1e-6)
          << "against at::linear: input " << x.sizes() << " weight " << weight.sizes();
    }
  }
}

}  // namespace stunt::test
