// Quantization math against the rules of compressed-tensors (FORMATS.md); the byte-level match
// with the library itself is checked in tests/python/test_ptq_reference.py.
#include <ATen/ATen.h>

#include "stunt/core/error.h"
#include "stunt/kernels/quantize.h"
#include "stunt/quant/observer.h"
#include "stunt/quant/qparams.h"
#include "test_util.h"

namespace stunt::quant {
namespace {

using Json = nlohmann::ordered_json;

QuantArgs args(const char* json) { return QuantArgs::from_json(Json::parse(json)); }

TEST(Packing, Int4RowMatchesTheDocumentedLayout) {
  const at::Tensor row = at::arange(-8, 8, at::kInt).reshape({1, 16});
  const at::Tensor packed = kernels::pack_int32(row, 4);
  ASSERT_EQ(packed.sizes(), (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(static_cast<uint32_t>(packed[0][0].item<int32_t>()), 0x76543210u);
  EXPECT_EQ(static_cast<uint32_t>(packed[0][1].item<int32_t>()), 0xFEDCBA98u);
}

TEST(Packing, RoundTripsForFourAndEightBitsWithPartialWords) {
  for (int bits : {4, 8}) {
    const int64_t half = int64_t{1} << (bits - 1);
    const at::Tensor values = at::randint(-half, half, {5, 13}, at::kInt);
    const at::Tensor packed = kernels::pack_int32(values, bits);
    EXPECT_EQ(packed.size(1), (13 * bits + 31) / 32);
    EXPECT_TRUE(kernels::unpack_int32(packed, bits, 13).equal(values)) << bits;
  }
  EXPECT_THROW_WITH(kernels::pack_int32(at::zeros({1, 8}, at::kInt), 3), Error, "4 or 8 bits");
  EXPECT_THROW_WITH(kernels::pack_int32(at::full({1, 8}, 8, at::kInt), 4), Error,
                    "outside the signed 4-bit range");
}

TEST(QParams, SymmetricInt4DividesBySevenAndAHalf) {
  const QuantArgs a = args(R"({"num_bits": 4, "strategy": "channel"})");
  const QParams qp = compute_qparams(at::tensor({-3.0f, -1.0f}), at::tensor({7.5f, 0.5f}), a);
  EXPECT_FLOAT_EQ(qp.scale[0].item<float>(), 1.0f);
  EXPECT_FLOAT_EQ(qp.scale[1].item<float>(), 1.0f / 7.5f);
  EXPECT_EQ(qp.zero_point.abs().sum().item<float>(), 0.0f);
}

TEST(QParams, AsymmetricWidensToZeroAndClampsTheZeroPoint) {
  const QuantArgs a = args(R"({"num_bits": 8, "symmetric": false})");
  // min 1, max 3 widen to [0, 3]: scale 3/255, zero point round(-128 - 0) = -128.
  const QParams qp = compute_qparams(at::tensor({1.0f}), at::tensor({3.0f}), a);
  EXPECT_FLOAT_EQ(qp.scale.item<float>(), 3.0f / 255.0f);
  EXPECT_FLOAT_EQ(qp.zero_point.item<float>(), -128.0f);
  // An all-zero group gets the dtype's epsilon, never a zero scale.
  const QParams zero = compute_qparams(at::zeros({1}), at::zeros({1}), a);
  EXPECT_GT(zero.scale.item<float>(), 0.0f);
}

TEST(Quantize, RoundsHalfToEvenAndClamps) {
  const at::Tensor x = at::tensor({0.5f, 1.5f, 2.5f, -0.5f, 100.0f, -100.0f});
  const at::Tensor q =
      kernels::quantize(x, at::ones({1}), at::Tensor(), kernels::QuantRange::int_bits(4));
  EXPECT_TRUE(q.equal(at::tensor({0.0f, 2.0f, 2.0f, -0.0f, 7.0f, -8.0f})));
  const at::Tensor f = kernels::quantize(at::tensor({1000.0f, 0.3f}), at::ones({1}), at::Tensor(),
                                         kernels::QuantRange::fp8_e4m3());
  EXPECT_FLOAT_EQ(f[0].item<float>(), 448.0f);
  EXPECT_FLOAT_EQ(f[1].item<float>(),
                  at::tensor({0.3f}).to(at::kFloat8_e4m3fn).to(at::kFloat).item<float>());
}

TEST(Quantize, GroupWeightsRoundTripThroughTheirIntegers) {
  const QuantArgs a =
      args(R"({"num_bits": 4, "strategy": "group", "group_size": 8, "symmetric": false})");
  const at::Tensor w = at::randn({6, 32});
  auto observer = Observer::create("memoryless_minmax", a, Observed::Weight);
  const QParams qp = observer->update(w);
  EXPECT_EQ(qp.scale.sizes(), (std::vector<int64_t>{6, 4}));
  const at::Tensor q = quantize_weight(w, qp, a);
  EXPECT_GE(q.min().item<float>(), -8.0f);
  EXPECT_LE(q.max().item<float>(), 7.0f);
  const at::Tensor fq = fake_quantize_weight(w, qp, a);
  EXPECT_TRUE(quantize_weight(fq, qp, a).equal(q));  // dequantized values are exact grid points
  EXPECT_LE((fq - w).abs().max().item<float>(), qp.scale.max().item<float>() / 2 + 1e-6);
  EXPECT_THROW_WITH(num_groups(a, 30, "model.layers.0.mlp.down_proj"), ValueError,
                    "model.layers.0.mlp.down_proj: group_size 8 does not divide in_features 30");
}

TEST(Quantize, DynamicTokenActivationsGetOneScalePerToken) {
  const QuantArgs a = args(R"({"num_bits": 8, "strategy": "token", "dynamic": true})");
  at::Tensor x = at::randn({2, 3, 16});
  x[0][1] *= 100;  // one loud token must not coarsen the others
  const at::Tensor fq = fake_quantize_activation(x, a);
  const at::Tensor per_token_error = (fq - x).abs().amax(-1);
  const at::Tensor per_token_step = x.abs().amax(-1) / 127.5;
  EXPECT_TRUE((per_token_error <= per_token_step / 2 * (1 + 1e-4)).all().item<bool>());
}

TEST(Observers, MovingAverageStaticAndMseFollowTheirRules) {
  const QuantArgs a = args(R"({"num_bits": 8})");
  auto moving = Observer::create("minmax", a, Observed::Activation);
  auto running = Observer::create("static_minmax", a, Observed::Activation);
  moving->update(at::tensor({-1.0f, 1.0f}));
  running->update(at::tensor({-1.0f, 1.0f}));
  moving->update(at::tensor({-2.0f, 3.0f}));
  running->update(at::tensor({-2.0f, 3.0f}));
  // moving average: 1 + 0.01 * (3 - 1) = 1.02 is the max; the min -1.01 is smaller in size.
  EXPECT_NEAR(moving->qparams().scale.item<float>(), 1.02f / 127.5f, 1e-7);
  EXPECT_NEAR(running->qparams().scale.item<float>(), 3.0f / 127.5f, 1e-7);

  const QuantArgs w4 = args(R"({"num_bits": 4, "strategy": "channel"})");
  at::Tensor w = at::randn({16, 256});
  w.select(1, 0).mul_(20);  // outliers: clipping them lowers the error elsewhere
  const QParams plain = Observer::create("memoryless_minmax", w4, Observed::Weight)->update(w);
  const QParams mse = Observer::create("memoryless_mse", w4, Observed::Weight)->update(w);
  auto error = [&](const QParams& qp) {
    return (fake_quantize_weight(w, qp, w4) - w).abs().pow(2.4).sum(1);
  };
  EXPECT_TRUE((error(mse) <= error(plain) + 1e-4).all().item<bool>());
  EXPECT_TRUE((mse.scale <= plain.scale + 1e-7).all().item<bool>());

  auto percentile = Observer::create("percentile", args(R"({"num_bits": 8,
      "observer_kwargs": {"percentile": 99.0}})"),
                                     Observed::Activation);
  const QParams p = percentile->update(at::arange(1, 1001, at::kFloat));
  EXPECT_NEAR(p.scale.item<float>(), 990.0f / 127.5f, 1e-4);
  EXPECT_THROW_WITH(Observer::create("histogram", a, Observed::Weight), ValueError,
                    "known observers: memoryless_minmax");
  EXPECT_THROW_WITH(
      Observer::create("minmax", args(R"({"observer_kwargs": {"grid": 3}})"), Observed::Weight),
      ValueError, "observer_kwargs.grid");
}

TEST(Quantize, NonFiniteWeightsStopWithTheTensorName) {
  at::Tensor w = at::randn({4, 4});
  w[1][2] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_THROW_WITH(check_finite(w, "model.layers.3.mlp.up_proj.weight"), ValueError,
                    "model.layers.3.mlp.up_proj.weight: the weight holds 1 NaN");
}

}  // namespace
}  // namespace stunt::quant
