#include "stunt/kernels/causal_attention.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>

#include "stunt/kernels/reference.h"

namespace stunt::kernels {
namespace {

struct Shape {
  int64_t batch, heads, kv_heads, length, dim;
};

/// [batch, heads, length, dim] either contiguous or as the transposed view of a
/// [batch, length, heads, dim] projection, the two layouts a model hands over.
at::Tensor random_heads(int64_t batch, int64_t heads, int64_t length, int64_t dim,
                        bool transposed) {
  if (transposed) return 3 * at::randn({batch, length, heads, dim}).transpose(1, 2);
  return 3 * at::randn({batch, heads, length, dim});
}

TEST(CausalAttention, MatchesTheFloat64Reference) {
  at::manual_seed(11);
  // One query; a partial query block; more keys than one key block (online softmax); a wide
  // group (smaller query blocks); a length past two key blocks with a narrow head.
  for (const Shape& s : {Shape{2, 6, 2, 1, 64}, Shape{1, 4, 4, 65, 32}, Shape{2, 6, 3, 300, 64},
                         Shape{1, 12, 1, 70, 80}, Shape{1, 2, 1, 513, 16}}) {
    for (bool transposed : {false, true}) {
      const at::Tensor q = random_heads(s.batch, s.heads, s.length, s.dim, transposed);
      const at::Tensor k = random_heads(s.batch, s.kv_heads, s.length, s.dim, transposed);
      const at::Tensor v = random_heads(s.batch, s.kv_heads, s.length, s.dim, transposed);
      ASSERT_TRUE(causal_attention_supported(q, k, v));
      const double scale = 1.0 / std::sqrt(static_cast<double>(s.dim));
      const at::Tensor got = causal_attention(q, k, v, scale);
      ASSERT_EQ(got.sizes(), q.sizes());
      const at::Tensor want = reference::causal_attention(q, k, v, scale);
      // Float32 rounding of scores near 30 shows in the outputs; ATen's kernel, scored the same
      // way, sets the bar.
      const at::Tensor aten = at::scaled_dot_product_attention(
          q, k, v, std::nullopt, 0.0, /*is_causal=*/true, scale, /*enable_gqa=*/true);
      const double aten_error = (aten.to(at::kDouble) - want).abs().max().item<double>();
      const double error = (got.to(at::kDouble) - want).abs().max().item<double>();
      EXPECT_LT(error, 2 * aten_error + 1e-6)
          << "length " << s.length << " dim " << s.dim << " group " << s.heads / s.kv_heads
          << (transposed ? " transposed" : "") << "; ATen's error " << aten_error;
      EXPECT_LT(error, 1e-4);
      // The heads merge back without a copy.
      EXPECT_TRUE(got.transpose(1, 2).is_contiguous());
    }
  }
}

TEST(CausalAttention, ASequenceDoesNotDependOnItsBatch) {
  at::manual_seed(12);
  const at::Tensor q = at::randn({3, 6, 130, 64});
  const at::Tensor k = at::randn({3, 2, 130, 64});
  const at::Tensor v = at::randn({3, 2, 130, 64});
  const at::Tensor batched = causal_attention(q, k, v, 0.125);
  for (int64_t b = 0; b < 3; ++b) {
    const at::Tensor alone =
        causal_attention(q.narrow(0, b, 1), k.narrow(0, b, 1), v.narrow(0, b, 1), 0.125);
    EXPECT_TRUE(alone.equal(batched.narrow(0, b, 1))) << "sequence " << b;
  }
}

TEST(CausalAttention, ANonFiniteKeyReachesOnlyTheQueriesThatSeeIt) {
  at::manual_seed(13);
  const at::Tensor q = at::randn({1, 4, 40, 16});
  at::Tensor k = at::randn({1, 2, 40, 16});
  const at::Tensor v = at::randn({1, 2, 40, 16});
  k[0][1][17][3] = std::numeric_limits<float>::quiet_NaN();
  const at::Tensor out = causal_attention(q, k, v, 0.25);
  // Key/value head 1 serves query heads 2 and 3.
  EXPECT_TRUE(at::isfinite(out.narrow(1, 0, 2)).all().item<bool>());
  EXPECT_TRUE(at::isfinite(out.narrow(1, 2, 2).narrow(2, 0, 17)).all().item<bool>());
  EXPECT_TRUE(at::isnan(out.narrow(1, 2, 2).narrow(2, 17, 23)).all().item<bool>());
}

TEST(CausalAttention, DeclinesWhatItDoesNotCompute) {
  const at::Tensor q = at::randn({1, 4, 8, 16});
  const at::Tensor k = at::randn({1, 2, 8, 16});
  EXPECT_FALSE(causal_attention_supported(q.to(at::kDouble), k.to(at::kDouble), k.to(at::kDouble)));
  EXPECT_FALSE(causal_attention_supported(q, at::randn({1, 3, 8, 16}), at::randn({1, 3, 8, 16})));
  // A cache: more keys than queries.
  EXPECT_FALSE(causal_attention_supported(q, at::randn({1, 2, 9, 16}), at::randn({1, 2, 9, 16})));
  // Last dimension not contiguous.
  EXPECT_FALSE(causal_attention_supported(q.transpose(2, 3).contiguous().transpose(2, 3), k, k));
  // A gradient is wanted.
  EXPECT_FALSE(causal_attention_supported(q.clone().requires_grad_(), k, k));
  EXPECT_THROW(causal_attention(q, at::randn({1, 3, 8, 16}), at::randn({1, 3, 8, 16}), 0.25),
               std::exception);
}

}  // namespace
}  // namespace stunt::kernels
