#include "stunt/kernels/onednn_linear.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/GradMode.h>
#include <gtest/gtest.h>

#include "float_linear_check.h"
#include "stunt/core/error.h"

namespace stunt::kernels {
namespace {

TEST(OnednnLinear, TheWheelsLibTorchCarriesIt) {
  // The pinned PyPI LibTorch is built with oneDNN; if this fails, calibration silently fell
  // back to MKL and lost its speed.
  EXPECT_TRUE(onednn_linear_supported(at::randn({4, 8}), at::randn({3, 8}), at::Tensor()));
}

TEST(OnednnLinear, MatchesFloat64WithinFloatRounding) {
  at::manual_seed(43);
  // A calibration forward's shapes (SmolLM2's q, k and down projections), a batch of
  // sequences, odd sizes, and a bias.
  test::expect_float_linear_close({{{512, 576}, 576, false},
                                   {{4, 128, 576}, 192, false},
                                   {{2, 64, 1536}, 576, false},
                                   {{3, 5, 7, 13}, 11, true},
                                   {{1, 1}, 1, true}},
                                  onednn_linear);
}

TEST(OnednnLinear, RowsAreIndependentAndThreadCountDoesNotMatter) {
  at::manual_seed(44);
  const at::Tensor x = at::randn({300, 96});
  const at::Tensor weight = at::randn({40, 96});
  const at::Tensor all = onednn_linear(x, weight, at::Tensor());
  EXPECT_TRUE(at::allclose(onednn_linear(x.narrow(0, 42, 3).contiguous(), weight, at::Tensor()),
                           all.narrow(0, 42, 3), 1e-6, 1e-5));
  const int threads = at::get_num_threads();
  at::set_num_threads(1);
  const at::Tensor one_thread = onednn_linear(x, weight, at::Tensor());
  at::set_num_threads(threads);
  EXPECT_TRUE(at::allclose(one_thread, all, 1e-6, 1e-5));
}

TEST(OnednnLinear, DeclinesWhatItCannotTake) {
  const at::Tensor x = at::randn({4, 8});
  const at::Tensor weight = at::randn({3, 8});
  EXPECT_FALSE(onednn_linear_supported(x.to(at::kDouble), weight.to(at::kDouble), at::Tensor()));
  EXPECT_FALSE(onednn_linear_supported(x.t(), at::randn({3, 4}), at::Tensor()));
  EXPECT_FALSE(onednn_linear_supported(x, weight.t().contiguous().t(), at::Tensor()));
  EXPECT_FALSE(onednn_linear_supported(x, at::randn({3, 7}), at::Tensor()));
  EXPECT_FALSE(onednn_linear_supported(x, weight, at::randn({4})));
  EXPECT_FALSE(onednn_linear_supported(at::randn({0, 8}), weight, at::Tensor()));
  {
    const c10::AutoGradMode grad(true);
    EXPECT_TRUE(onednn_linear_supported(x, weight, at::Tensor()));
    EXPECT_FALSE(onednn_linear_supported(x, weight.clone().requires_grad_(), at::Tensor()));
    EXPECT_FALSE(onednn_linear_supported(x, weight, at::zeros({3}).requires_grad_()));
  }
  EXPECT_THROW(onednn_linear(x, at::randn({3, 7}), at::Tensor()), Error);
}

}  // namespace
}  // namespace stunt::kernels
