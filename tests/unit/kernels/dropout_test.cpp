#include "stunt/kernels/dropout.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <cmath>

namespace stunt::kernels {
namespace {

TEST(Dropout, KeepsTheRightShareScaledAsAtenDoes) {
  const at::Tensor x = at::randn({1000, 1001});
  for (const double p : {0.1, 0.5, 0.9}) {
    const at::Tensor y = dropout_with_seed(x, p, 12345);
    const at::Tensor kept = y.ne(0);
    const double share = kept.to(at::kDouble).mean().item<double>();
    // Four standard deviations of a binomial share over a million elements.
    const double sigma = std::sqrt(p * (1 - p) / static_cast<double>(x.numel()));
    EXPECT_NEAR(share, 1 - p, 4 * sigma) << "p " << p;
    const float scale = static_cast<float>(1.0 / (1.0 - p));
    EXPECT_TRUE(y.masked_select(kept).equal(x.masked_select(kept) * scale)) << "p " << p;
    // Neighbours (the two halves of one draw) are kept independently.
    const at::Tensor flat = kept.reshape(-1).to(at::kDouble);
    const double both = (flat.narrow(0, 0, flat.numel() - 1) * flat.narrow(0, 1, flat.numel() - 1))
                            .mean()
                            .item<double>();
    EXPECT_NEAR(both, (1 - p) * (1 - p), 6 * sigma) << "p " << p;
  }
}

TEST(Dropout, TheSeedAloneDecidesTheMask) {
  const at::Tensor x = at::randn({300, 77});
  const at::Tensor a = dropout_with_seed(x, 0.3, 7);
  EXPECT_TRUE(a.equal(dropout_with_seed(x, 0.3, 7)));
  EXPECT_FALSE(a.ne(0).equal(dropout_with_seed(x, 0.3, 8).ne(0)));
  const int threads = at::get_num_threads();
  at::set_num_threads(1);
  const at::Tensor one_thread = dropout_with_seed(x, 0.3, 7);
  at::set_num_threads(threads);
  EXPECT_TRUE(a.equal(one_thread));
  // The same seed on another tensor of the shape drops the same elements: the backward pass.
  const at::Tensor grad = at::randn({300, 77});
  EXPECT_TRUE(dropout_with_seed(grad, 0.3, 7).ne(0).equal(a.ne(0) & grad.ne(0)));
  // A non-contiguous input is masked in its contiguous layout.
  EXPECT_TRUE(
      dropout_with_seed(x.t(), 0.3, 7).equal(dropout_with_seed(x.t().contiguous(), 0.3, 7)));
}

TEST(Dropout, EdgeRates) {
  const at::Tensor x = at::randn({5, 5});
  EXPECT_TRUE(dropout_with_seed(x, 0.0, 1).equal(x));
  EXPECT_TRUE(dropout_with_seed(x, 1.0, 1).eq(0).all().item<bool>());
  EXPECT_THROW(dropout_with_seed(x, -0.1, 1), std::exception);
  EXPECT_THROW(dropout_with_seed(x.to(at::kDouble), 0.1, 1), std::exception);
}

TEST(Dropout, SeedsComeFromAtensGenerator) {
  at::manual_seed(5);
  const uint64_t first = draw_dropout_seed();
  at::manual_seed(5);
  EXPECT_EQ(draw_dropout_seed(), first);
  EXPECT_NE(draw_dropout_seed(), first);
}

}  // namespace
}  // namespace stunt::kernels
