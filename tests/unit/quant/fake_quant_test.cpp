// Fake quantization for training against PyTorch's own fake-quant ops: the straight-through
// gradient against fake_quantize_per_channel_affine's backward, the learned-step-size gradients
// against _fake_quantize_learnable_per_{channel,tensor}_affine (TRAINING.md, "QAT math"). The
// forward values are compressed-tensors' (checked in quantize_test and the Python tests).
#include "stunt/quant/fake_quant.h"

#include <ATen/ATen.h>

#include "stunt/core/error.h"
#include "test_util.h"

namespace stunt::quant {
namespace {

using Json = nlohmann::ordered_json;

QuantArgs args(const char* json) { return QuantArgs::from_json(Json::parse(json)); }

/// The gradient budget against torch: the same products in the same order, summed over at most
/// a few dozen elements in float32.
constexpr double kMaxGradientError = 1e-6;

/// Qparams from 70% of each scale element's range, so that some weights clamp.
QParams shrunk_qparams(const at::Tensor& weight, const QuantArgs& a) {
  auto [low, high] = weight_min_max(weight, a);
  return compute_qparams(low * 0.7, high * 0.7, a);
}

at::Tensor gradient_of(const at::Tensor& out, const at::Tensor& dy, const at::Tensor& leaf) {
  out.backward(dy);
  return leaf.grad().clone();
}

TEST(FakeQuantSte, ForwardIsThePostTrainingFakeQuantization) {
  at::manual_seed(0);
  const at::Tensor w = at::randn({6, 32});
  for (const char* spec : {R"({"num_bits": 4, "strategy": "group", "group_size": 8})",
                           R"({"num_bits": 8, "strategy": "channel", "symmetric": false})",
                           R"({"num_bits": 4, "strategy": "tensor"})"}) {
    const QuantArgs a = args(spec);
    const QParams qp = shrunk_qparams(w, a);
    const at::Tensor out = fake_quantize_weight_for_training(w.clone().requires_grad_(true), qp, a,
                                                             FakeQuantEstimator::StraightThrough);
    EXPECT_TRUE(out.detach().equal(fake_quantize_weight(w, qp, a))) << spec;
  }
}

TEST(FakeQuantSte, GradientIsTorchsFakeQuantGradientPerChannel) {
  at::manual_seed(1);
  const at::Tensor w = at::randn({8, 32}) * 2;
  const at::Tensor dy = at::randn_like(w);
  const QuantArgs a = args(R"({"num_bits": 4, "strategy": "channel", "symmetric": false})");
  const QParams qp = shrunk_qparams(w, a);

  const at::Tensor x = w.clone().requires_grad_(true);
  const at::Tensor ours = gradient_of(
      fake_quantize_weight_for_training(x, qp, a, FakeQuantEstimator::StraightThrough), dy, x);
  const at::Tensor x_ref = w.clone().requires_grad_(true);
  const at::Tensor ref = at::fake_quantize_per_channel_affine(
      x_ref, qp.scale.flatten(), qp.zero_point.flatten().to(at::kInt), 0, -8, 7);
  const at::Tensor theirs = gradient_of(ref, dy, x_ref);

  EXPECT_TRUE(ours.equal(theirs));
  // The case is not trivial: the clamp stops some gradients and passes most.
  const int64_t stopped = (ours == 0).sum().item<int64_t>();
  EXPECT_GT(stopped, 0);
  EXPECT_LT(stopped, w.numel() / 2);
}

TEST(FakeQuantSte, DynamicTokenActivationsHoldTheirScaleConstant) {
  at::manual_seed(2);
  const at::Tensor h = at::randn({2, 5, 16});
  const at::Tensor dy = at::randn_like(h);
  const QuantArgs a = args(R"({"num_bits": 8, "strategy": "token", "dynamic": true})");

  const at::Tensor x = h.clone().requires_grad_(true);
  const at::Tensor out =
      fake_quantize_activation_for_training(x, a, nullptr, FakeQuantEstimator::StraightThrough);
  EXPECT_TRUE(out.detach().equal(fake_quantize_activation(h, a)));
  const at::Tensor ours = gradient_of(out, dy, x);

  // The same per-token scales as constants in torch's per-channel op over the token rows.
  const at::Tensor rows = h.reshape({10, 16});
  const at::Tensor scale = rows.abs().amax(1) / 127.5;
  const at::Tensor x_ref = rows.clone().requires_grad_(true);
  const at::Tensor ref =
      at::fake_quantize_per_channel_affine(x_ref, scale, at::zeros({10}, at::kInt), 0, -128, 127);
  const at::Tensor theirs = gradient_of(ref, dy.reshape({10, 16}), x_ref);
  // Each row's extreme sits at exactly +-127.5 steps, where x / scale (compressed-tensors) and
  // x * (1 / scale) (torch) may round apart; everywhere else the gradients are the same.
  const at::Tensor extreme = rows.abs() == rows.abs().amax(1, true);
  EXPECT_TRUE(ours.reshape({10, 16}).masked_fill(extreme, 0).equal(theirs.masked_fill(extreme, 0)));
  // There the gradient follows the forward's own rounding: +127.5 rounds (half to even) to 128,
  // outside the range, and -127.5 to -128, inside.
  const at::Tensor level = at::round(rows / scale.unsqueeze(1));
  const at::Tensor inside = at::logical_and(level >= -128, level <= 127);
  const at::Tensor expected = at::where(inside, dy.reshape({10, 16}), 0.0f);
  EXPECT_TRUE(ours.reshape({10, 16}).masked_select(extreme).equal(expected.masked_select(extreme)));
}

TEST(FakeQuantLsq, GradientsAreTorchsLearnablePerChannelOnes) {
  at::manual_seed(3);
  const at::Tensor w = at::randn({8, 16}) * 3;
  const at::Tensor dy = at::randn_like(w);
  const QuantArgs a = args(R"({"num_bits": 4, "strategy": "channel", "symmetric": false})");
  const QParams qp = shrunk_qparams(w, a);
  const kernels::QuantRange range = quant_range(a);
  const double factor = lsq_grad_factor(16, range);
  // Offsets off the integer grid: the forward rounds them, the gradient still reaches them.
  const at::Tensor zero_point = qp.zero_point.flatten() + 0.3;

  const at::Tensor x = w.clone().requires_grad_(true);
  const at::Tensor scale = qp.scale.flatten().clone().requires_grad_(true);
  const at::Tensor zp = zero_point.clone().requires_grad_(true);
  const at::Tensor out = fake_quantize_lsq(x, scale.unsqueeze(1), zp.unsqueeze(1), range, factor);
  out.backward(dy);

  const at::Tensor x_ref = w.clone().requires_grad_(true);
  const at::Tensor scale_ref = qp.scale.flatten().clone().requires_grad_(true);
  const at::Tensor zp_ref = zero_point.clone().requires_grad_(true);
  const at::Tensor ref =
      at::_fake_quantize_learnable_per_channel_affine(x_ref, scale_ref, zp_ref, 0, -8, 7, factor);
  ref.backward(dy);

  EXPECT_TRUE(at::allclose(out, ref, 0, kMaxGradientError));
  EXPECT_TRUE(x.grad().equal(x_ref.grad()));
  EXPECT_TRUE(at::allclose(scale.grad(), scale_ref.grad(), 0, kMaxGradientError))
      << scale.grad() << scale_ref.grad();
  EXPECT_TRUE(at::allclose(zp.grad(), zp_ref.grad(), 0, kMaxGradientError))
      << zp.grad() << zp_ref.grad();
  EXPECT_GT(zp.grad().abs().sum().item<double>(), 0.0);
}

TEST(FakeQuantLsq, GradientsAreTorchsLearnablePerTensorOnes) {
  at::manual_seed(4);
  const at::Tensor w = at::randn({4, 8});
  const at::Tensor dy = at::randn_like(w);
  const kernels::QuantRange range = kernels::QuantRange::int_bits(8);
  const double factor = lsq_grad_factor(w.numel(), range);
  const at::Tensor scale0 = at::full({1}, 0.011f);  // small enough that the tails clamp

  const at::Tensor x = w.clone().requires_grad_(true);
  const at::Tensor scale = scale0.clone().requires_grad_(true);
  fake_quantize_lsq(x, scale, at::Tensor(), range, factor).backward(dy);
  const at::Tensor x_ref = w.clone().requires_grad_(true);
  const at::Tensor scale_ref = scale0.clone().requires_grad_(true);
  at::_fake_quantize_learnable_per_tensor_affine(x_ref, scale_ref, at::zeros({1}), -128, 127,
                                                 factor)
      .backward(dy);

  EXPECT_TRUE(x.grad().equal(x_ref.grad()));
  EXPECT_TRUE(at::allclose(scale.grad(), scale_ref.grad(), 0, kMaxGradientError))
      << scale.grad() << scale_ref.grad();
  EXPECT_LT((x.grad() == 0).sum().item<int64_t>(), w.numel());
}

TEST(FakeQuantLsq, GroupScalesAreChannelScalesOfTheGroupedRows) {
  at::manual_seed(5);
  const at::Tensor w = at::randn({4, 32});
  const at::Tensor dy = at::randn_like(w);
  const QuantArgs a = args(R"({"num_bits": 4, "strategy": "group", "group_size": 8})");
  const QParams qp = shrunk_qparams(w, a);

  const at::Tensor x = w.clone().requires_grad_(true);
  QParams learned{qp.scale.clone().requires_grad_(true), qp.zero_point};
  fake_quantize_weight_for_training(x, learned, a, FakeQuantEstimator::LearnedStepSize)
      .backward(dy);

  // 16 rows of 8: one scale each, the gradient scale of 8 weights per scale.
  const at::Tensor x_ref = w.reshape({16, 8}).clone().requires_grad_(true);
  const at::Tensor scale_ref = qp.scale.flatten().clone().requires_grad_(true);
  at::_fake_quantize_learnable_per_channel_affine(x_ref, scale_ref, at::zeros({16}), 0, -8, 7,
                                                  lsq_grad_factor(8, quant_range(a)))
      .backward(dy.reshape({16, 8}));

  EXPECT_TRUE(x.grad().reshape({16, 8}).equal(x_ref.grad()));
  EXPECT_TRUE(at::allclose(learned.scale.grad().flatten(), scale_ref.grad(), 0, kMaxGradientError));
}

TEST(FakeQuantLsq, GradFactorIsOneOverRootOfElementsTimesQmax) {
  EXPECT_DOUBLE_EQ(lsq_grad_factor(64, kernels::QuantRange::int_bits(4)),
                   1.0 / std::sqrt(64.0 * 7));
  EXPECT_THROW_WITH(lsq_grad_factor(0, kernels::QuantRange::int_bits(4)), Error, "needs elements");
}

TEST(FakeQuantForTraining, RefusesWhatItCannotTrain) {
  const at::Tensor w = at::randn({4, 8});
  const QuantArgs fp8 = args(R"({"num_bits": 8, "type": "float", "strategy": "channel"})");
  const QParams qp = shrunk_qparams(w, fp8);
  EXPECT_THROW_WITH(
      fake_quantize_weight_for_training(w, qp, fp8, FakeQuantEstimator::LearnedStepSize),
      ValueError, "straight-through estimator for fp8");
  const QuantArgs dynamic = args(R"({"num_bits": 8, "strategy": "token", "dynamic": true})");
  EXPECT_THROW_WITH(fake_quantize_activation_for_training(w, dynamic, nullptr,
                                                          FakeQuantEstimator::LearnedStepSize),
                    ValueError, "need static input scales");
  const QuantArgs static_channel = args(R"({"num_bits": 8, "strategy": "channel"})");
  EXPECT_THROW_WITH(fake_quantize_activation_for_training(w, static_channel, &qp,
                                                          FakeQuantEstimator::StraightThrough),
                    ValueError, "supports strategy tensor");
}

}  // namespace
}  // namespace stunt::quant
