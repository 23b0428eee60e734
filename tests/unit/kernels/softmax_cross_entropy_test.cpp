#include "stunt/kernels/softmax_cross_entropy.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/GradMode.h>
#include <gtest/gtest.h>

#include <limits>

#include "stunt/core/error.h"

namespace stunt::kernels {
namespace {

TEST(SoftmaxCrossEntropy, LossAndGradientMatchFloat64Autograd) {
  at::manual_seed(61);
  // Vocabularies with whole vectors, a tail, and past one 1024-float block of the exp sum.
  for (const int64_t vocab : {1, 9, 64, 3001}) {
    const int64_t rows = 37;
    const at::Tensor logits = at::randn({rows, vocab}) * 5;
    at::Tensor targets = at::randint(vocab, {rows}, at::kLong);
    targets[3] = -100;
    targets[20] = -100;
    const float scale = 1.0f / 35.0f;
    const SoftmaxCrossEntropy got = softmax_cross_entropy(logits, targets, -100, true, scale);

    const c10::AutoGradMode enable(true);
    const at::Tensor x = logits.to(at::kDouble).requires_grad_(true);
    const at::Tensor want = at::cross_entropy_loss(x, targets, {}, at::Reduction::None, -100);
    want.sum().mul(scale).backward();
    EXPECT_LT((got.losses - want.detach()).abs().max().item<double>(), 1e-5) << vocab;
    EXPECT_EQ(got.losses[3].item<double>(), 0.0);
    const double error = (got.gradient.to(at::kDouble) - x.grad()).abs().max().item<double>();
    EXPECT_LT(error, 1e-7) << vocab;
    EXPECT_TRUE(got.gradient[20].eq(0).all().item<bool>());
  }
}

TEST(SoftmaxCrossEntropy, ExtremeLogitsStayFiniteAndNaNPropagates) {
  at::Tensor logits = at::zeros({3, 100});
  logits[0][5] = 1e30;   // the target's probability underflows to 0 in float32: loss 1e30
  logits[1][7] = -1e30;  // one impossible class, not the target
  logits[2][9] = std::numeric_limits<float>::quiet_NaN();
  const at::Tensor targets = at::tensor({0, 1, 2}, at::kLong);
  const SoftmaxCrossEntropy got = softmax_cross_entropy(logits, targets, -100, true, 1.0f);
  EXPECT_NEAR(got.losses[0].item<double>(), 1e30, 1e24);
  EXPECT_NEAR(got.losses[1].item<double>(), std::log(99.0), 1e-6);
  EXPECT_TRUE(std::isnan(got.losses[2].item<double>()));
  EXPECT_TRUE(at::isfinite(got.gradient.narrow(0, 0, 2)).all().item<bool>());
}

TEST(SoftmaxCrossEntropy, ThreadCountDoesNotMatter) {
  at::manual_seed(62);
  const at::Tensor logits = at::randn({64, 500});
  const at::Tensor targets = at::randint(500, {64}, at::kLong);
  const SoftmaxCrossEntropy all = softmax_cross_entropy(logits, targets, -100, true, 0.5f);
  const int threads = at::get_num_threads();
  at::set_num_threads(1);
  const SoftmaxCrossEntropy one = softmax_cross_entropy(logits, targets, -100, true, 0.5f);
  at::set_num_threads(threads);
  EXPECT_TRUE(all.losses.equal(one.losses));
  EXPECT_TRUE(all.gradient.equal(one.gradient));
}

TEST(SoftmaxCrossEntropy, RefusesTargetsOutsideTheVocabulary) {
  const at::Tensor logits = at::randn({4, 10});
  try {
    softmax_cross_entropy(logits, at::tensor({1, 2, 10, 3}, at::kLong), -100, false, 1.0f);
    FAIL() << "expected a ValueError";
  } catch (const ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("target 10 at row 2"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(softmax_cross_entropy_supported(logits.to(at::kDouble), at::zeros({4}, at::kLong)));
  EXPECT_FALSE(softmax_cross_entropy_supported(logits.t(), at::zeros({10}, at::kLong)));
  EXPECT_FALSE(softmax_cross_entropy_supported(logits, at::zeros({4}, at::kInt)));
}

}  // namespace
}  // namespace stunt::kernels
