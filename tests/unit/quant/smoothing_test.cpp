// The arithmetic of SmoothQuant, log equalization and AWQ's grid (the model-level searches are
// checked against Python references in tests/python/test_awq_reference.py and
// test_log_equalization_reference.py).
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>

#include "stunt/quant/awq.h"
#include "stunt/quant/smoothquant.h"

namespace stunt::quant {
namespace {

TEST(Smoothing, SmoothQuantScalesFollowTheFormulaPerChannel) {
  const at::Tensor range = at::tensor({4.0f, 1.0f, 0.0f});
  const at::Tensor w1 = at::tensor({1.0f, -2.0f, 0.0f, 0.5f, 0.25f, 0.0f}).reshape({2, 3});
  const at::Tensor w2 = at::tensor({-3.0f, 0.0f, 0.0f}).reshape({1, 3});
  const at::Tensor s = smoothquant_scales(range, {w1, w2}, 0.5);
  // channel 0: sqrt(4) / sqrt(2 * 3); channel 1: sqrt(1) / sqrt(2 * 2); channel 2: weights all
  // zero, so the range itself (0), floored at 1e-5.
  EXPECT_NEAR(s[0].item<float>(), 2.0 / std::sqrt(6.0), 1e-6);
  EXPECT_NEAR(s[1].item<float>(), 0.5, 1e-6);
  EXPECT_NEAR(s[2].item<float>(), 1e-5, 1e-12);
}

TEST(Smoothing, LogEqualizationScales) {
  const at::Tensor s = log_equalization_scales(at::tensor({6.0f, 0.0f}));
  EXPECT_NEAR(s[0].item<float>(), 6.0 / 3.0, 1e-6);  // log2(8) = 3
  EXPECT_NEAR(s[1].item<float>(), 1e-5, 1e-12);
}

TEST(Smoothing, AwqGridsAsLlmCompressorBuildsThem) {
  const auto plain = awq_grid(5, "false");
  ASSERT_EQ(plain.size(), 5u);
  EXPECT_DOUBLE_EQ(plain[1].ratio, 0.25);
  EXPECT_FALSE(plain[4].duo);
  const auto duo = awq_grid(5, "true");
  ASSERT_EQ(duo.size(), 5u);
  EXPECT_FALSE(duo[0].duo);  // ratio 0 without duo first, then 4 ratios with it
  EXPECT_TRUE(duo[1].duo);
  EXPECT_DOUBLE_EQ(duo[2].ratio, 1.0 / 3.0);
  const auto both = awq_grid(6, "both");
  ASSERT_EQ(both.size(), 6u);
  EXPECT_DOUBLE_EQ(both[2].ratio, 0.5);
  EXPECT_FALSE(both[2].duo);
  EXPECT_TRUE(both[3].duo);
}

TEST(Smoothing, AwqWeightMeanLeavesUnquantizedWeightsOut) {
  QuantArgs channel;
  channel.strategy = QuantStrategy::Channel;
  const at::Tensor quantized = at::tensor({1.0f, -2.0f, 4.0f, 2.0f}).reshape({2, 2});
  const at::Tensor other = at::full({3, 2}, 9.0f);
  const at::Tensor mean = awq_weight_mean({quantized, other}, {&channel, nullptr});
  // Rows normalized by their max |w| (+1e-6): [0.5, 1] and [1, 0.5]; the mean of the two.
  EXPECT_NEAR(mean[0].item<double>(), 0.75, 1e-6);
  EXPECT_NEAR(mean[1].item<double>(), 0.75, 1e-6);
  const at::Tensor x_mean = at::tensor({4.0f, 1.0f});
  const at::Tensor s = awq_scales(x_mean, mean, {1.0, false}, at::kFloat);
  // x_mean normalized by sqrt(max * min) = 2.
  EXPECT_NEAR(s[0].item<float>(), 2.0, 1e-6);
  EXPECT_NEAR(s[1].item<float>(), 0.5, 1e-6);
}

}  // namespace
}  // namespace stunt::quant
