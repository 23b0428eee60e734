#include "stunt/kernels/rotary_embedding.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <gtest/gtest.h>

#include <limits>

namespace stunt::kernels {
namespace {

/// The elementwise form transformers runs (and Stunt's model ran before the kernel).
at::Tensor aten_rotary(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  const int64_t half = x.size(-1) / 2;
  const at::Tensor rotated = at::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
  return x * cos.unsqueeze(1) + rotated * sin.unsqueeze(1);
}

TEST(RotaryEmbedding, IsBitIdenticalToTheElementwiseForm) {
  at::manual_seed(31);
  // Head sizes with whole vectors, a vector and a tail, and only a tail.
  for (const int64_t dim : {64, 16, 18, 6}) {
    for (const bool per_sequence_tables : {false, true}) {
      const int64_t batch = 3, length = 37, heads = 5;
      // A projection's output [batch, length, heads·dim] viewed as heads, as the model does.
      const at::Tensor projected = at::randn({batch, length, heads * dim}) * 30;
      const at::Tensor x = projected.view({batch, length, heads, dim}).transpose(1, 2);
      const at::Tensor cos = at::randn({per_sequence_tables ? batch : 1, length, dim});
      const at::Tensor sin = at::randn({per_sequence_tables ? batch : 1, length, dim});
      ASSERT_TRUE(rotary_embedding_supported(x, cos, sin));
      const at::Tensor got = rotary_embedding(x, cos, sin);
      EXPECT_TRUE(got.equal(aten_rotary(x, cos, sin))) << "dim " << dim;
      EXPECT_EQ(got.strides(), x.strides()) << "the output keeps x's layout";
      const at::Tensor contiguous = x.contiguous();
      EXPECT_TRUE(rotary_embedding(contiguous, cos, sin).equal(got));
    }
  }
}

TEST(RotaryEmbedding, CarriesNaNAndInfinityAsTheElementwiseFormDoes) {
  at::Tensor x = at::randn({1, 2, 4, 32});
  x[0][1][2][3] = std::numeric_limits<float>::quiet_NaN();
  x[0][0][1][20] = std::numeric_limits<float>::infinity();
  const at::Tensor cos = at::randn({1, 4, 32});
  const at::Tensor sin = at::randn({1, 4, 32});
  const at::Tensor got = rotary_embedding(x, cos, sin);
  const at::Tensor want = aten_rotary(x, cos, sin);
  EXPECT_TRUE(at::isnan(got).equal(at::isnan(want)));
  EXPECT_TRUE(at::isinf(got).equal(at::isinf(want)));
  EXPECT_TRUE(at::nan_to_num(got).equal(at::nan_to_num(want)));
  EXPECT_GT(at::isnan(got).sum().item<int64_t>(), 0);
}

TEST(RotaryEmbedding, DeclinesWhatItCannotTake) {
  const at::Tensor x = at::randn({1, 2, 4, 8});
  const at::Tensor cos = at::randn({1, 4, 8});
  EXPECT_FALSE(rotary_embedding_supported(x.to(at::kDouble), cos, cos));
  EXPECT_FALSE(rotary_embedding_supported(at::randn({1, 2, 4, 7}), at::randn({1, 4, 7}),
                                          at::randn({1, 4, 7})));  // odd head size
  EXPECT_FALSE(rotary_embedding_supported(x, at::randn({1, 5, 8}), at::randn({1, 5, 8})));
  EXPECT_FALSE(rotary_embedding_supported(x, at::randn({2, 4, 8}), at::randn({2, 4, 8})));
  EXPECT_FALSE(rotary_embedding_supported(x.narrow(2, 0, 2), cos.narrow(1, 0, 2),
                                          cos.narrow(1, 0, 2)));  // not dense
  {
    const c10::AutoGradMode grad(true);
    const at::Tensor trained = x.clone().requires_grad_(true);
    EXPECT_FALSE(rotary_embedding_supported(trained, cos, cos));
  }
  EXPECT_THROW(rotary_embedding(x.to(at::kDouble), cos, cos), std::exception);
}

}  // namespace
}  // namespace stunt::kernels
