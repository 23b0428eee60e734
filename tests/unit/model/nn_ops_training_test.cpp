// The differentiable forms the native models train through: seeded dropout and attention with
// dropout, against ATen's arithmetic with the same masks.
#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <gtest/gtest.h>

#include "model/detail/nn_ops.h"

namespace stunt::model::detail {
namespace {

TEST(TrainingDropout, GradientIsTheForwardsMaskAndReplaysFromTheSeed) {
  const c10::AutoGradMode enable(true);
  const at::Tensor x = at::randn({64, 33}).requires_grad_(true);
  at::manual_seed(3);
  const at::Tensor y = dropout(x, 0.25);
  const at::Tensor upstream = at::randn({64, 33});
  y.backward(upstream);
  const at::Tensor kept = y.detach().ne(0);
  const float scale = 1.0f / 0.75f;
  EXPECT_TRUE(x.grad().equal(at::where(kept, upstream * scale, at::zeros_like(upstream))));
  at::manual_seed(3);
  EXPECT_TRUE(dropout(x, 0.25).detach().equal(y.detach()));
  EXPECT_FALSE(dropout(x, 0.25).detach().equal(y.detach()));
  EXPECT_TRUE(dropout(x, 0.0).is_same(x));
}

TEST(TrainingAttention, WithDropoutItIsSoftmaxAttentionWithTheProbabilitiesDropped) {
  // Grouped-query heads, causal or through a bias: softmax(q kᵀ · scale) with the same seed's
  // dropout on the probabilities, times v.
  const at::Tensor q = at::randn({2, 4, 6, 8});
  const at::Tensor k = at::randn({2, 2, 6, 8});
  const at::Tensor v = at::randn({2, 2, 6, 8});
  const double scale = 0.35;
  const at::Tensor key = k.repeat_interleave(2, 1);
  const at::Tensor value = v.repeat_interleave(2, 1);
  const at::Tensor scores = at::matmul(q, key.transpose(-2, -1)) * scale;
  const at::Tensor causal = at::ones({6, 6}, at::kBool).triu(1);
  const at::Tensor probs = at::softmax(scores.masked_fill(causal, -1e30), -1);
  at::manual_seed(9);
  const at::Tensor got = attention(q, k, v, {}, /*causal=*/true, scale, 0.3);
  at::manual_seed(9);
  const at::Tensor dropped = dropout(probs, 0.3);
  EXPECT_TRUE(at::allclose(got, at::matmul(dropped, value), 1e-5, 1e-6));
  // With the mask as a bias.
  const at::Tensor bias = at::zeros({6, 6}).masked_fill(causal, -1e30);
  at::manual_seed(9);
  EXPECT_TRUE(at::allclose(attention(q, k, v, bias, false, scale, 0.3), got, 1e-5, 1e-6));
  // Rate 0 is SDPA.
  EXPECT_TRUE(
      at::allclose(attention(q, k, v, {}, true, scale, 0.0), at::matmul(probs, value), 1e-5, 1e-6));
}

}  // namespace
}  // namespace stunt::model::detail
