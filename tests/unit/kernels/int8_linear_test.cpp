#include "stunt/kernels/int8_linear.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "stunt/core/error.h"
#include "stunt/kernels/quantize.h"
#include "stunt/quant/qparams.h"
#include "stunt/quant/quant_args.h"

namespace stunt::kernels {
namespace {

quant::QuantArgs per_token_int8() {
  quant::QuantArgs args;
  args.num_bits = 8;
  args.symmetric = true;
  args.strategy = quant::QuantStrategy::Token;
  args.dynamic = quant::DynamicKind::Dynamic;
  return args;
}

TEST(Int8Linear, RowsQuantizeAsCompressedTensorsDoes) {
  at::manual_seed(3);
  // Rows of different ranges, an all-zero row (scale falls to epsilon), values on rounding
  // ties, and lengths that leave a remainder after every vector width.
  for (int64_t in : {1, 7, 16, 33, 576}) {
    at::Tensor x =
        at::randn({6, in}) * at::tensor({1e-3f, 1.0f, 30.0f, 0.0f, 1.0f, 5.0f}).view({6, 1});
    x[4] = at::arange(in).to(at::kFloat) * 0.5 - 3.0;
    const Int8Rows rows = quantize_rows_dynamic(x);
    const at::Tensor want = quant::fake_quantize_activation(x, per_token_int8(), nullptr);
    const at::Tensor got = (rows.values.to(at::kFloat) - 128) * rows.scales.unsqueeze(1);
    EXPECT_TRUE(at::equal(got, want))
        << "in " << in << ": largest difference " << (got - want).abs().max().item<float>();
  }
}

TEST(Int8Linear, MatchesTheFakeQuantizedReference) {
  std::string why;
  if (!int8_linear_available(&why)) {
    GTEST_SKIP() << "no int8 kernel on this machine: " << why;
  }
  at::manual_seed(4);
  for (auto shape : std::vector<std::pair<std::vector<int64_t>, int64_t>>{
           {{1, 576}, 576}, {{17, 64}, 48}, {{2, 9, 1536}, 576}, {{130, 96}, 16}}) {
    const int64_t in = shape.first.back();
    const at::Tensor q = at::randint(-127, 128, {shape.second, in}, at::kInt);
    const at::Tensor scale = at::rand({shape.second, 1}) * 0.01 + 0.001;
    const at::Tensor bias = at::randn({shape.second});
    const Int8PackedWeight packed = pack_int8_weight(q, scale);
    const at::Tensor x = at::randn(shape.first).reshape({-1, in});
    const at::Tensor got = int8_linear(quantize_rows_dynamic(x), packed, bias);
    const at::Tensor xq = quant::fake_quantize_activation(x, per_token_int8(), nullptr);
    const at::Tensor dense = q.to(at::kDouble) * scale.to(at::kDouble);
    const at::Tensor want = at::linear(xq.to(at::kDouble), dense, bias.to(at::kDouble));
    const at::Tensor magnitude = at::linear(xq.to(at::kDouble).abs(), dense.abs()) + bias.abs();
    // The int32 sums are exact; only the float32 scaling rounds.
    const double worst = ((got.to(at::kDouble) - want).abs() / magnitude).max().item<double>();
    EXPECT_LT(worst, 1e-6) << "input " << shape.first << " out " << shape.second;
  }
}

TEST(Int8Linear, TheSmallBatchKernelAgreesWithOnednn) {
  std::string why;
  if (!int8_linear_available(&why)) {
    GTEST_SKIP() << "no int8 kernel on this machine: " << why;
  }
  at::manual_seed(5);
  for (int64_t rows : {1, 2, 3, 4, 5, 9}) {
    const at::Tensor q = at::randint(-128, 128, {48, 100}, at::kInt);
    const Int8PackedWeight packed = pack_int8_weight(q, at::rand({48}) + 0.01);
    const Int8Rows x = quantize_rows_dynamic(at::randn({rows, 100}) * 3);
    const at::Tensor bias = at::randn({48});
    const at::Tensor fast = int8_linear(x, packed, bias);
    const at::Tensor onednn = int8_linear_onednn(x, packed, bias);
    EXPECT_TRUE(at::allclose(fast, onednn, 1e-6, 1e-6))
        << rows << " rows through " << int8_linear_path(rows, packed) << ": largest difference "
        << (fast - onednn).abs().max().item<float>();
  }
  // Shapes the blocked layout cannot hold go to oneDNN for every row count.
  const Int8PackedWeight odd = pack_int8_weight(at::randint(-128, 128, {10, 6}), at::ones({10}));
  EXPECT_EQ(int8_linear_path(1, odd), "int8-onednn");
  EXPECT_EQ(int8_linear(quantize_rows_dynamic(at::randn({1, 6})), odd, {}).sizes(),
            (std::vector<int64_t>{1, 10}));
}

TEST(Int8Linear, BadWeightsAreRefused) {
  std::string why;
  if (!int8_linear_available(&why)) {
    EXPECT_THROW(pack_int8_weight(at::zeros({4, 4}), at::ones({4})), Error);
    return;
  }
  EXPECT_THROW(pack_int8_weight(at::full({4, 4}, 128), at::ones({4})), ValueError);
  EXPECT_THROW(pack_int8_weight(at::full({4, 4}, 0.5), at::ones({4})), ValueError);
  EXPECT_THROW(pack_int8_weight(at::zeros({4, 4}), at::ones({3})), ValueError);
  EXPECT_THROW(quantize_rows_static(at::randn({2, 4}), 0.0f), ValueError);
}

}  // namespace
}  // namespace stunt::kernels
