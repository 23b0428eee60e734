// The fused AdamW step equals LibTorch's AdamW up to float rounding, keeps the same state (so a
// torch::save / torch::load round trip continues identically), and skips tensors without
// gradients.
#include "stunt/train/fused_adamw.h"

#include <ATen/ATen.h>
#include <torch/serialize.h>

#include <gtest/gtest.h>

#include "test_util.h"

namespace stunt::train {
namespace {

std::vector<at::Tensor> parameters(int64_t seed) {
  at::manual_seed(seed);
  return {at::randn({7, 5}).requires_grad_(), at::randn({13}).requires_grad_(),
          at::randn({3}).requires_grad_()};
}

void set_gradients(std::vector<at::Tensor>& params, int64_t step) {
  at::manual_seed(100 + step);
  for (size_t i = 0; i + 1 < params.size(); ++i)
    params[i].mutable_grad() = at::randn_like(params[i]);
  params.back().mutable_grad() = at::Tensor();  // no gradient: untouched, no state
}

TEST(FusedAdamW, EqualsLibTorchAdamWUpToRounding) {
  for (bool amsgrad : {false, true}) {
    std::vector<at::Tensor> fused = parameters(0), plain = parameters(0);
    const auto options = torch::optim::AdamWOptions(1e-2)
                             .betas({0.8, 0.95})
                             .eps(1e-6)
                             .weight_decay(0.1)
                             .amsgrad(amsgrad);
    FusedAdamW a(fused, options);
    torch::optim::AdamW b(plain, options);
    const at::Tensor untouched = fused.back().detach().clone();
    for (int64_t step = 0; step < 6; ++step) {
      set_gradients(fused, step);
      set_gradients(plain, step);
      a.step();
      b.step();
    }
    for (size_t i = 0; i < fused.size(); ++i) {
      EXPECT_TRUE(at::allclose(fused[i], plain[i], 1e-6, 1e-7))
          << "tensor " << i << " amsgrad " << amsgrad << ": "
          << (fused[i] - plain[i]).abs().max().item<double>();
    }
    EXPECT_TRUE(at::equal(fused.back(), untouched));
    EXPECT_EQ(a.state().size(), 2u);
  }
}

TEST(FusedAdamW, StateSurvivesSaveAndLoad) {
  test::TempDir dir;
  std::vector<at::Tensor> straight = parameters(1), resumed = parameters(1);
  const auto options = torch::optim::AdamWOptions(1e-2).weight_decay(0.01);
  FusedAdamW a(straight, options);
  {
    FusedAdamW first(resumed, options);
    for (int64_t step = 0; step < 3; ++step) {
      set_gradients(straight, step);
      set_gradients(resumed, step);
      a.step();
      first.step();
    }
    torch::save(first, (dir / "optimizer.pt").string());
  }
  FusedAdamW second(resumed, options);
  torch::load(second, (dir / "optimizer.pt").string());
  for (int64_t step = 3; step < 6; ++step) {
    set_gradients(straight, step);
    set_gradients(resumed, step);
    a.step();
    second.step();
  }
  for (size_t i = 0; i < straight.size(); ++i) EXPECT_TRUE(at::equal(straight[i], resumed[i])) << i;
}

}  // namespace
}  // namespace stunt::train
