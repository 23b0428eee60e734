#include "stunt/quant/gptq.h"

#include <ATen/ATen.h>

#include "layer_data.h"
#include "stunt/core/error.h"
#include "stunt/quant/observer.h"
#include "test_util.h"

namespace stunt::quant {
namespace {

using Json = nlohmann::ordered_json;

QuantArgs args(const char* json) { return QuantArgs::from_json(Json::parse(json)); }

using test::correlated_inputs;
using test::output_error;

TEST(Gptq, BeatsRoundToNearestOnTheLayerOutput) {
  const at::Tensor x = correlated_inputs(512, 64);
  const at::Tensor w = at::randn({32, 64});
  for (const char* scheme :
       {R"({"num_bits": 4, "strategy": "group", "group_size": 16})",
        R"({"num_bits": 4, "strategy": "group", "group_size": 16, "actorder": "static"})",
        R"({"num_bits": 4, "strategy": "channel", "symmetric": false})",
        R"({"num_bits": 8, "strategy": "tensor"})"}) {
    const QuantArgs a = args(scheme);
    HessianAccumulator h(64, at::kFloat);
    h.add(x.reshape({8, 64, 64}));
    EXPECT_EQ(h.samples(), 8);
    GptqOptions options;
    options.block_size = 16;
    options.layer = "test.layer";
    const GptqResult r = gptq_quantize(w, h.hessian(), a, options);
    const QParams rtn_qp = Observer::create("memoryless_minmax", a, Observed::Weight)->update(w);
    const at::Tensor rtn = fake_quantize_weight(w, rtn_qp, a);
    // Same scales as round to nearest (computed once from the original weight) ...
    EXPECT_TRUE(r.qparams.scale.equal(rtn_qp.scale)) << scheme;
    // ... every weight on the grid they define ...
    EXPECT_TRUE(fake_quantize_weight(r.weight, r.qparams, a).equal(r.weight)) << scheme;
    EXPECT_TRUE(quantize_weight(r.weight, r.qparams, a).equal(r.q)) << scheme;
    // ... and a smaller error on the layer's output.
    EXPECT_LT(output_error(x, w, r.weight), 0.9 * output_error(x, w, rtn)) << scheme;
  }
}

TEST(Gptq, Float64HessianKeepsTheScalesAndTheWeightDtype) {
  const at::Tensor x = correlated_inputs(512, 64);
  const at::Tensor w = at::randn({32, 64});
  const QuantArgs a = args(R"({"num_bits": 4, "strategy": "group", "group_size": 16})");
  HessianAccumulator h32(64, at::kFloat);
  HessianAccumulator h64(64, at::kDouble);
  h32.add(x.reshape({8, 64, 64}));
  h64.add(x.reshape({8, 64, 64}));
  ASSERT_EQ(h64.hessian().scalar_type(), at::kDouble);
  EXPECT_TRUE(at::allclose(h64.hessian().to(at::kFloat), h32.hessian(), 1e-5, 1e-4));
  GptqOptions options;
  options.block_size = 16;
  const GptqResult r32 = gptq_quantize(w, h32.hessian(), a, options);
  const GptqResult r64 = gptq_quantize(w, h64.hessian(), a, options);
  // The scales are float32 minmax scales of the original weight either way ...
  EXPECT_TRUE(r64.qparams.scale.equal(r32.qparams.scale));
  EXPECT_EQ(r64.weight.scalar_type(), at::kFloat);
  EXPECT_TRUE(fake_quantize_weight(r64.weight, r64.qparams, a).equal(r64.weight));
  // ... and the two precisions reach the same quality.
  const double e32 = output_error(x, w, r32.weight);
  const double e64 = output_error(x, w, r64.weight);
  EXPECT_NEAR(e64, e32, 0.02 * e32);
}

TEST(Gptq, DiagonalHessianGivesRoundToNearest) {
  // With no correlation between inputs there is nothing to compensate: GPTQ is RTN.
  const QuantArgs a = args(R"({"num_bits": 4, "strategy": "channel"})");
  const at::Tensor w = at::randn({8, 32});
  GptqOptions options;
  const GptqResult r = gptq_quantize(w, at::diag(at::rand({32}) + 0.5), a, options);
  const QParams qp = Observer::create("memoryless_minmax", a, Observed::Weight)->update(w);
  EXPECT_TRUE(r.weight.equal(fake_quantize_weight(w, qp, a)));
}

TEST(Gptq, SingularHessianEscalatesDampeningWithoutNaN) {
  const QuantArgs a = args(R"({"num_bits": 4, "strategy": "channel"})");
  const at::Tensor w = at::randn({4, 2});
  GptqOptions options;
  options.layer = "model.layers.0.self_attn.o_proj";
  // Indefinite (eigenvalues 3 and -1): only a large dampening makes it positive definite.
  const GptqResult r =
      gptq_quantize(w, at::tensor({1.0f, 2.0f, 2.0f, 1.0f}).reshape({2, 2}), a, options);
  EXPECT_GT(r.dampening_used, options.dampening_frac);
  EXPECT_TRUE(at::isfinite(r.weight).all().item<bool>());
  // Dead inputs (never active) are zeroed rather than producing NaN.
  const GptqResult dead = gptq_quantize(w, at::zeros({2, 2}), a, options);
  EXPECT_TRUE(at::isfinite(dead.weight).all().item<bool>());
  EXPECT_EQ(dead.weight.abs().sum().item<float>(), 0.0f);
}

TEST(Gptq, RefusesWhatItCannotQuantize) {
  at::Tensor w = at::randn({4, 8});
  GptqOptions options;
  options.layer = "model.layers.1.mlp.up_proj";
  EXPECT_THROW_WITH(
      gptq_quantize(w, at::eye(8), args(R"({"num_bits": 4, "group_size": 3})"), options),
      ValueError, "model.layers.1.mlp.up_proj: group_size 3 does not divide in_features 8");
  w[0][0] = std::numeric_limits<float>::infinity();
  EXPECT_THROW_WITH(gptq_quantize(w, at::eye(8), args(R"({"num_bits": 4})"), options), ValueError,
                    "model.layers.1.mlp.up_proj: the weight holds 0 NaN and 1 infinite");
}

TEST(Gptq, SharedInputProductGivesTheSameSymmetricHessian) {
  // 500 inputs are halved twice (leaves of 125 columns): the upper-triangle product, mirrored
  // by hessian(), must equal the plain xᵀx sum.
  const at::Tensor x = correlated_inputs(96, 500).reshape({3, 32, 500});
  HessianAccumulator plain(500, at::kFloat);
  HessianAccumulator shared(500, at::kFloat);
  for (int64_t b = 0; b < 3; ++b) {
    const at::Tensor batch = x.narrow(0, b, 1);
    plain.add(batch);
    shared.add_product(HessianAccumulator::input_product(batch, at::kFloat), batch);
  }
  EXPECT_EQ(shared.samples(), plain.samples());
  const at::Tensor h = shared.hessian();
  EXPECT_TRUE(h.equal(h.t()));
  EXPECT_TRUE(at::allclose(h, plain.hessian(), 1e-5, 1e-4));
}

TEST(Gptq, InverseFactorIsTheCholeskyFactorOfTheInverse) {
  // Sizes with and without halving in the triangular inverse.
  for (int64_t n : {7, 200, 300}) {
    const at::Tensor x = correlated_inputs(4 * n, n).to(at::kDouble);
    HessianAccumulator h(n, at::kDouble);
    h.add(x.reshape({4, -1, n}));
    const at::Tensor hessian = h.hessian();
    kernels::DampeningOptions dampening;
    double used = 0;
    const at::Tensor factor = kernels::inverse_hessian_factor(hessian, dampening, &used);
    EXPECT_EQ(used, dampening.frac);
    at::Tensor dampened = hessian.clone();
    dampened.diagonal().add_(dampening.frac * hessian.diagonal().mean().item<double>());
    // GPTQ's own sequence: Cholesky, inverse, Cholesky.
    const at::Tensor expected =
        at::linalg_cholesky(at::cholesky_inverse(at::linalg_cholesky(dampened)), /*upper=*/true);
    EXPECT_TRUE(factor.equal(factor.triu())) << n;
    EXPECT_TRUE(at::allclose(factor, expected, 1e-9, 1e-9)) << n;
  }
}

TEST(Gptq, FactorCacheReusesOnlyAnEqualHessian) {
  auto hessian_of = [](const at::Tensor& x) {
    HessianAccumulator h(x.size(1), at::kFloat);
    h.add(x.reshape({8, -1, x.size(1)}));
    return h.hessian();
  };
  const at::Tensor first = hessian_of(correlated_inputs(256, 64));
  const at::Tensor second = hessian_of(correlated_inputs(256, 64) * 2 + 1);
  const QuantArgs scheme = args(R"({"num_bits": 4, "strategy": "group", "group_size": 16})");
  kernels::InverseFactorCache cache;
  GptqOptions cached;
  cached.block_size = 16;
  cached.factor_cache = &cache;
  GptqOptions plain = cached;
  plain.factor_cache = nullptr;
  // q, k and v: three weights with one Hessian, then another layer with its own.
  for (const at::Tensor& hessian : {first, first, first, second}) {
    const at::Tensor w = at::randn({24, 64});
    const GptqResult a = gptq_quantize(w, hessian.clone(), scheme, cached);
    const GptqResult b = gptq_quantize(w, hessian.clone(), scheme, plain);
    EXPECT_TRUE(a.weight.equal(b.weight));
    EXPECT_EQ(a.loss, b.loss);
  }
  kernels::DampeningOptions dampening;
  double used = 0;
  const at::Tensor f1 = cache.factor(first, dampening, &used);
  EXPECT_TRUE(cache.factor(first.clone(), dampening, &used).is_same(f1));
  EXPECT_FALSE(cache.factor(second, dampening, &used).is_same(f1));
  dampening.frac = 0.1;
  EXPECT_TRUE(cache.factor(second, dampening, &used)
                  .equal(kernels::inverse_hessian_factor(second, dampening, &used)));
}

}  // namespace
}  // namespace stunt::quant
