#include "stunt/kernels/tempered_kl.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>

namespace stunt::kernels {
namespace {

// The oracle in float64: per-row KL(softmax(t/T) ‖ softmax(s/T)) and its gradient (q − p)/T.
std::pair<at::Tensor, at::Tensor> oracle(const at::Tensor& s, const at::Tensor& t, double temp) {
  const at::Tensor log_q = at::log_softmax(s.to(at::kDouble) / temp, -1);
  const at::Tensor log_p = at::log_softmax(t.to(at::kDouble) / temp, -1);
  const at::Tensor p = log_p.exp();
  const at::Tensor kl = (at::xlogy(p, p) - p * log_q).sum(-1);
  return {kl, (log_q.exp() - p) / temp};
}

TEST(TemperedKl, EqualsTheSoftmaxFormulaWithItsGradient) {
  at::manual_seed(0);
  // Vocabularies that do and do not fill whole vector lanes, one of SmolLM2's size; logits
  // spread wide enough that many terms underflow.
  for (int64_t vocab : {1, 13, 97, 49152}) {
    for (double temperature : {1.0, 2.0, 0.5}) {
      const at::Tensor s = at::randn({5, vocab}) * 6;
      const at::Tensor t = at::randn({5, vocab}) * 6 + s * 0.5;
      const TemperedKl got = tempered_kl(s, t, temperature, true, 0.25f);
      const auto [kl, grad] = oracle(s, t, temperature);
      EXPECT_TRUE(at::allclose(got.losses, kl, 1e-5, 1e-6)) << vocab << " " << temperature << "\n"
                                                            << got.losses << kl;
      EXPECT_TRUE(
          at::allclose(got.gradient.to(at::kDouble), grad * (0.25 * temperature), 1e-5, 1e-7))
          << vocab << " " << temperature;
      EXPECT_FALSE(tempered_kl(s, t, temperature, false, 0.0f).gradient.defined());
    }
  }
}

TEST(TemperedKl, SameDistributionsGiveZeroAndANanRowStaysItsOwn) {
  at::Tensor s = at::randn({3, 40});
  const TemperedKl same = tempered_kl(s, s.clone(), 2.0, true, 1.0f);
  EXPECT_LT(same.losses.abs().max().item<double>(), 1e-6);
  EXPECT_LT(same.gradient.abs().max().item<float>(), 1e-7);
  s[1][7] = NAN;
  const TemperedKl with_nan = tempered_kl(s, at::randn({3, 40}), 2.0, true, 1.0f);
  EXPECT_TRUE(std::isnan(with_nan.losses[1].item<double>()));
  EXPECT_TRUE(std::isfinite(with_nan.losses[0].item<double>()));
  EXPECT_TRUE(at::isfinite(with_nan.gradient[2]).all().item<bool>());
}

TEST(TemperedKl, TakesFloat32RowsOfOneShape) {
  EXPECT_TRUE(tempered_kl_supported(at::randn({2, 8}), at::randn({2, 8})));
  EXPECT_FALSE(tempered_kl_supported(at::randn({2, 8}), at::randn({2, 9})));
  EXPECT_FALSE(tempered_kl_supported(at::randn({2, 8}, at::kDouble), at::randn({2, 8})));
  EXPECT_FALSE(tempered_kl_supported(at::randn({8, 2}).t(), at::randn({2, 8})));
}

}  // namespace
}  // namespace stunt::kernels
