#include "stunt/kernels/int4_linear.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "stunt/core/error.h"

namespace stunt::kernels {
namespace {

struct Int4Case {
  std::vector<int64_t> input;
  int64_t out;
  int64_t group;
  bool zeros;
  bool bias;
};

struct Int4Layer {
  at::Tensor q, scale, zero, dense;
  Int4PackedWeight packed;
};

Int4Layer make_layer(int64_t out, int64_t in, int64_t group, bool zeros) {
  Int4Layer l;
  l.q = at::randint(-8, 8, {out, in}, at::kInt);
  l.scale = at::rand({out, in / group}) * 0.1 + 0.01;
  if (zeros) l.zero = at::randint(-8, 8, {out, in / group}, at::kInt);
  l.packed = pack_int4_weight(l.q, l.scale, l.zero);
  const at::Tensor z = zeros ? l.zero : at::zeros_like(l.scale);
  l.dense = ((l.q.view({out, -1, group}) - z.unsqueeze(2)).to(at::kDouble) *
             l.scale.to(at::kDouble).unsqueeze(2))
                .view({out, in});
  return l;
}

// Each output sums `in` products; float32 sums of them stay within a few ulps of the sum of
// magnitudes (the factored form adds one product per group).
void expect_close(const at::Tensor& got, const at::Tensor& x, const Int4Layer& l,
                  const at::Tensor& bias, const std::string& what) {
  at::Tensor want = at::matmul(x.to(at::kDouble), l.dense.t());
  at::Tensor magnitude = at::matmul(x.to(at::kDouble).abs(), l.dense.abs().t());
  if (bias.defined()) {
    want = want + bias.to(at::kDouble);
    magnitude = magnitude + bias.to(at::kDouble).abs();
  }
  ASSERT_EQ(got.sizes(), want.sizes()) << what;
  ASSERT_EQ(got.scalar_type(), at::kFloat) << what;
  const double worst =
      ((got.to(at::kDouble) - want).abs() / (magnitude + 1e-30)).max().item<double>();
  EXPECT_LT(worst, 4e-6) << what;
}

const std::vector<Int4Case>& cases() {
  static const std::vector<Int4Case> all = {
      // SmolLM2's decode and prefill shapes (groups of 64), odd row counts around each tile
      // size, per-channel scales (one group), zero points, a bias, three-dimensional input.
      {{1, 576}, 576, 64, false, false},   {{1, 576}, 1536, 64, true, false},
      {{3, 1536}, 576, 64, false, true},   {{7, 64}, 48, 8, true, false},
      {{13, 128}, 16, 128, false, false},  {{2, 5, 96}, 80, 32, true, true},
      {{100, 576}, 192, 64, false, false}, {{200, 64}, 272, 16, true, true},
      {{1, 8}, 16, 8, false, false},       {{9, 40}, 32, 40, false, false},
  };
  return all;
}

TEST(Int4Linear, PackingKeepsTheValuesExactly) {
  at::manual_seed(1);
  for (bool zeros : {false, true}) {
    const Int4Layer l = make_layer(48, 64, 16, zeros);
    EXPECT_TRUE(at::equal(dequantize_int4_weight(l.packed), l.dense.to(at::kFloat)));
    EXPECT_EQ(l.packed.bytes(), 48 * 64 / 2 + 48 * 4 * 4 * (zeros ? 2 : 1));
  }
}

TEST(Int4Linear, MatchesFloat64OnEveryPath) {
  at::manual_seed(2);
  for (const Int4Case& c : cases()) {
    const Int4Layer l = make_layer(c.out, c.input.back(), c.group, c.zeros);
    const at::Tensor x = at::randn(c.input);
    const at::Tensor bias = c.bias ? at::randn({c.out}) : at::Tensor();
    const std::string what =
        str("input ", c.input, " out ", c.out, " group ", c.group, c.zeros ? " with zeros" : "",
            " path ", int4_linear_path(x.numel() / c.input.back()));
    expect_close(int4_linear(x, l.packed, bias), x, l, bias, what);
    for (const char* isa : {"avx512", "avx2", "portable"}) {
      try {
        expect_close(int4_linear_tiles(x, l.packed, isa), x, l, at::Tensor(),
                     what + " tiles " + isa);
      } catch (const NotImplementedError&) {
        // This CPU lacks the instruction set; the portable form always runs.
        EXPECT_NE(std::string(isa), "portable");
      }
    }
  }
}

TEST(Int4Linear, BadWeightsAreRefusedWithTheReason) {
  const at::Tensor scale = at::ones({16, 2});
  EXPECT_THROW(pack_int4_weight(at::full({16, 8}, 8, at::kInt), scale, {}), ValueError);
  EXPECT_THROW(pack_int4_weight(at::zeros({15, 8}, at::kInt), at::ones({15, 2}), {}), ValueError);
  EXPECT_THROW(pack_int4_weight(at::zeros({16, 12}, at::kInt), at::ones({16, 2}), {}), ValueError);
  EXPECT_THROW(pack_int4_weight(at::zeros({16, 8}, at::kInt), scale, at::full({16, 2}, 9)),
               ValueError);
  const Int4PackedWeight w = pack_int4_weight(at::zeros({16, 8}, at::kInt), at::ones({16, 1}), {});
  std::string why;
  EXPECT_FALSE(int4_linear_supported(at::randn({2, 7}), w, at::Tensor(), &why));
  EXPECT_NE(why.find("in_features 8"), std::string::npos) << why;
  EXPECT_FALSE(int4_linear_supported(at::randn({2, 8}, at::kDouble), w, at::Tensor(), &why));
}

}  // namespace
}  // namespace stunt::kernels
