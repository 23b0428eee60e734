#include "stunt/kernels/gated_silu.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <gtest/gtest.h>

#include <limits>

namespace stunt::kernels {
namespace {

TEST(GatedSilu, MatchesFloat64WithinAFewUlps) {
  at::manual_seed(51);
  // Lengths with whole vectors, a tail, and several parallel chunks.
  for (const int64_t n : {1, 7, 8, 9, 1000, 3 * 16384 + 5}) {
    const at::Tensor gate = at::randn({n}) * 6;
    const at::Tensor up = at::randn({n});
    const at::Tensor got = gated_silu(gate, up);
    const at::Tensor g = gate.to(at::kDouble);
    const at::Tensor want = g * at::sigmoid(g) * up.to(at::kDouble);
    const double error =
        ((got.to(at::kDouble) - want).abs() / (want.abs() + 1e-30)).max().item<double>();
    EXPECT_LT(error, 1e-6) << "n " << n;
  }
  // The whole range the exponential covers, and past it, where float32 results fall below its
  // normal range (compared in absolute terms there).
  const at::Tensor sweep = at::linspace(-120, 120, 100001);
  const at::Tensor g = sweep.to(at::kDouble);
  const at::Tensor want = g * at::sigmoid(g);
  const at::Tensor got = gated_silu(sweep, at::ones_like(sweep)).to(at::kDouble);
  const at::Tensor scale = at::clamp_min(want.abs(), 1e-25);
  EXPECT_LT(((got - want).abs() / scale).max().item<double>(), 1e-6);
}

TEST(GatedSilu, BackwardMatchesFloat64Autograd) {
  at::manual_seed(52);
  for (const int64_t n : {1, 7, 8, 9, 1000, 3 * 16384 + 5}) {
    const at::Tensor gate = at::randn({n}) * 6;
    const at::Tensor up = at::randn({n});
    const at::Tensor grad = at::randn({n});
    const auto [grad_gate, grad_up] = gated_silu_backward(grad, gate, up);
    const c10::AutoGradMode enable(true);
    const at::Tensor g = gate.to(at::kDouble).requires_grad_(true);
    const at::Tensor u = up.to(at::kDouble).requires_grad_(true);
    (at::silu(g) * u).backward(grad.to(at::kDouble));
    // Element by element, relative to the size of the product's factors: silu's slope crosses
    // zero near gate = -1.28, where a relative error alone means nothing. The slope
    // s · (1 + g · (1 - s)) takes five rounded float steps: a few ulps.
    const at::Tensor factors = (grad * up).abs().to(at::kDouble) + 1e-30;
    EXPECT_LT(((grad_gate.to(at::kDouble) - g.grad()).abs() / factors).max().item<double>(), 4e-6)
        << "n " << n;
    EXPECT_LT(((grad_up.to(at::kDouble) - u.grad()).abs() / (u.grad().abs() + 1e-30))
                  .max()
                  .item<double>(),
              1e-6)
        << "n " << n;
  }
}

TEST(GatedSilu, CarriesNaNAndInfinityAsAtenDoes) {
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  // Each special value at a vector position and at a tail position.
  at::Tensor gate = at::randn({19});
  gate[1] = nan;
  gate[2] = inf;
  gate[3] = -inf;
  gate[17] = nan;
  gate[18] = inf;
  at::Tensor up = at::randn({19});
  up[5] = nan;
  const at::Tensor got = gated_silu(gate, up);
  const at::Tensor want = at::silu(gate) * up;
  EXPECT_TRUE(at::isnan(got).equal(at::isnan(want)));
  EXPECT_TRUE(at::isinf(got).equal(at::isinf(want)));
  EXPECT_TRUE(at::signbit(got.masked_select(at::isinf(got)))
                  .equal(at::signbit(want.masked_select(at::isinf(want)))));
}

TEST(GatedSilu, DeclinesWhatItCannotTake) {
  const at::Tensor gate = at::randn({4, 8});
  EXPECT_FALSE(gated_silu_supported(gate, at::randn({4, 7})));
  EXPECT_FALSE(gated_silu_supported(gate.t(), gate.t()));
  EXPECT_FALSE(gated_silu_supported(gate.to(at::kDouble), gate.to(at::kDouble)));
  {
    const c10::AutoGradMode grad(true);
    EXPECT_FALSE(gated_silu_supported(gate.clone().requires_grad_(true), gate));
  }
  EXPECT_THROW(gated_silu(gate, at::randn({3})), std::exception);
}

}  // namespace
}  // namespace stunt::kernels
