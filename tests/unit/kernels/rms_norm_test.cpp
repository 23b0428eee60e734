#include "stunt/kernels/rms_norm.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/GradMode.h>
#include <gtest/gtest.h>

#include <limits>
#include <utility>
#include <vector>

namespace stunt::kernels {
namespace {

TEST(RmsNorm, MatchesFloat64AndAtenWithinAFewUlps) {
  at::manual_seed(41);
  // Widths with whole 32-float steps, 8-float steps and tails.
  for (const int64_t width : {576, 64, 40, 13, 1}) {
    const at::Tensor x = at::randn({3, 29, width}) * 7;
    const at::Tensor weight = at::randn({width});
    const at::Tensor got = rms_norm(x, weight, 1e-5);
    const at::Tensor x64 = x.to(at::kDouble);
    const at::Tensor want =
        x64 * at::rsqrt(x64.square().mean(-1, /*keepdim=*/true) + 1e-5) * weight.to(at::kDouble);
    const at::Tensor scale = want.abs() + 1e-30;
    EXPECT_LT(((got.to(at::kDouble) - want).abs() / scale).max().item<double>(), 1e-6)
        << "width " << width;
    const at::Tensor aten = at::rms_norm(x, {width}, weight, 1e-5);
    EXPECT_LT(((got - aten).abs() / (aten.abs() + 1e-30)).max().item<float>(), 1e-6)
        << "width " << width;
  }
}

TEST(RmsNorm, RowsAreIndependentAndThreadCountDoesNotMatter) {
  at::manual_seed(42);
  at::Tensor x = at::randn({300, 576});
  const at::Tensor weight = at::randn({576});
  x[7][100] = std::numeric_limits<float>::quiet_NaN();
  const at::Tensor everywhere = rms_norm(x, weight, 1e-6);
  EXPECT_TRUE(at::isnan(everywhere[7]).all().item<bool>());
  EXPECT_FALSE(at::isnan(everywhere.narrow(0, 8, 292)).any().item<bool>());
  // One row alone normalizes as it does among others.
  EXPECT_TRUE(rms_norm(x.narrow(0, 42, 1), weight, 1e-6).equal(everywhere.narrow(0, 42, 1)));
  const int threads = at::get_num_threads();
  at::set_num_threads(1);
  const at::Tensor one_thread = rms_norm(x, weight, 1e-6);
  at::set_num_threads(threads);
  EXPECT_TRUE(at::nan_to_num(one_thread).equal(at::nan_to_num(everywhere)));
}

TEST(RmsNorm, BackwardMatchesFloat64Autograd) {
  at::manual_seed(43);
  // Rows across several 64-row blocks of the weight gradient, and a tail block.
  for (const auto& [rows, width] :
       std::vector<std::pair<int64_t, int64_t>>{{1, 576}, {3, 13}, {130, 64}, {517, 40}}) {
    const at::Tensor x = at::randn({rows, width}) * 3;
    const at::Tensor weight = at::randn({width});
    const at::Tensor grad = at::randn({rows, width});
    const auto [grad_x, grad_weight] = rms_norm_backward(grad, x, weight, 1e-5);
    const c10::AutoGradMode enable(true);
    const at::Tensor x64 = x.to(at::kDouble).requires_grad_(true);
    const at::Tensor w64 = weight.to(at::kDouble).requires_grad_(true);
    const at::Tensor y = x64 * at::rsqrt(x64.square().mean(-1, /*keepdim=*/true) + 1e-5) * w64;
    y.backward(grad.to(at::kDouble));
    for (const auto& [got, want] :
         {std::pair{grad_x, x64.grad()}, std::pair{grad_weight, w64.grad()}}) {
      // Relative to the gradient's own scale: entries near zero are sums that cancel.
      const double error =
          ((got.to(at::kDouble) - want).abs().max() / want.abs().max()).item<double>();
      EXPECT_LT(error, 1e-5) << rows << " x " << width;
    }
  }
}

TEST(RmsNorm, DeclinesWhatItCannotTake) {
  const at::Tensor x = at::randn({4, 8});
  const at::Tensor weight = at::randn({8});
  EXPECT_FALSE(rms_norm_supported(x.t(), weight));  // not contiguous
  EXPECT_FALSE(rms_norm_supported(x.to(at::kDouble), weight));
  EXPECT_FALSE(rms_norm_supported(x, at::randn({4})));
  {
    const c10::AutoGradMode grad(true);
    EXPECT_FALSE(rms_norm_supported(x, weight.clone().requires_grad_(true)));
  }
  EXPECT_THROW(rms_norm(x, at::randn({4}), 1e-6), std::exception);
}

}  // namespace
}  // namespace stunt::kernels
