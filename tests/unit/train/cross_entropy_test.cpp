#include "stunt/train/cross_entropy.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <gtest/gtest.h>

#include <cmath>

namespace stunt::train {
namespace {

TEST(TokenCrossEntropy, ValueAndGradientMatchAten) {
  at::manual_seed(71);
  const c10::AutoGradMode enable(true);
  const at::Tensor base = at::randn({50, 333}) * 4;
  at::Tensor targets = at::randint(333, {50}, at::kLong);
  targets.narrow(0, 10, 5).fill_(-100);

  const at::Tensor mine = base.clone().requires_grad_(true);
  const at::Tensor loss = token_cross_entropy(mine, targets);
  // An upstream factor other than 1 (a gradient-accumulation divisor) scales the gradient.
  (loss * 0.25).backward();
  const at::Tensor theirs = base.clone().requires_grad_(true);
  const at::Tensor want = at::cross_entropy_loss(theirs, targets, {}, at::Reduction::Mean, -100);
  (want * 0.25).backward();

  EXPECT_EQ(loss.scalar_type(), at::kFloat);
  EXPECT_NEAR(loss.item<double>(), want.item<double>(), 1e-5);
  EXPECT_TRUE(at::allclose(mine.grad(), theirs.grad(), 1e-4, 1e-8));
  EXPECT_TRUE(mine.grad().narrow(0, 10, 5).eq(0).all().item<bool>());
}

TEST(TokenCrossEntropy, WithoutAutogradAndOnOtherDtypesGivesAtensValue) {
  at::manual_seed(72);
  const at::Tensor logits = at::randn({8, 20});
  const at::Tensor targets = at::randint(20, {8}, at::kLong);
  const double want =
      at::cross_entropy_loss(logits, targets, {}, at::Reduction::Mean, -100).item<double>();
  EXPECT_NEAR(token_cross_entropy(logits, targets).item<double>(), want, 1e-5);
  EXPECT_NEAR(token_cross_entropy(logits.to(at::kDouble), targets).item<double>(), want, 1e-5);
  // Every target ignored: NaN, as ATen's mean over nothing.
  EXPECT_TRUE(
      std::isnan(token_cross_entropy(logits, at::full({8}, -100, at::kLong)).item<float>()));
}

}  // namespace
}  // namespace stunt::train
