#pragma once
/// AdamW whose step runs ATen's fused kernel (`_fused_adamw_`, what torch.optim.AdamW(fused=True)
/// runs): one pass over each parameter, its gradient and its two moments, where LibTorch's
/// torch::optim::AdamW makes a dozen elementwise passes. On a 135M-parameter model that is most
/// of the optimizer's time. The state is torch::optim::AdamW's (AdamWParamState per parameter),
/// so checkpoints, torch::save and torch::load see no difference; the values equal AdamW's up to
/// float rounding.

#include <torch/optim/adamw.h>

namespace stunt::train {

class FusedAdamW : public torch::optim::AdamW {
 public:
  using torch::optim::AdamW::AdamW;
  torch::Tensor step(LossClosure closure = nullptr) override;
};

}  // namespace stunt::train
