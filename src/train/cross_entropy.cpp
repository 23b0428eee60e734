#include "stunt/train/cross_entropy.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <torch/csrc/autograd/custom_function.h>

#include "stunt/kernels/softmax_cross_entropy.h"

namespace stunt::train {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

struct FusedCrossEntropy : torch::autograd::Function<FusedCrossEntropy> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& logits,
                            const at::Tensor& targets, int64_t ignore_index) {
    const int64_t counted = targets.ne(ignore_index).sum().item<int64_t>();
    const float scale = counted > 0 ? 1.0f / static_cast<float>(counted) : 0.0f;
    const bool with_gradient = logits.requires_grad();
    kernels::SoftmaxCrossEntropy result =
        kernels::softmax_cross_entropy(logits, targets, ignore_index, with_gradient, scale);
    if (with_gradient) ctx->save_for_backward({result.gradient});
    // Summed in float64, then divided as ATen divides its float32 sum by the count.
    return (result.losses.sum() / static_cast<double>(counted)).to(at::kFloat);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const at::Tensor gradient = ctx->get_saved_variables()[0];
    const at::Tensor& upstream = grad_outputs[0];
    at::Tensor grad_logits =
        upstream.item<float>() == 1.0f ? gradient : gradient * upstream.to(at::kFloat);
    return {grad_logits, at::Tensor(), at::Tensor()};
  }
};

}  // namespace

at::Tensor token_cross_entropy(const at::Tensor& logits, const at::Tensor& targets,
                               int64_t ignore_index) {
  if (!kernels::softmax_cross_entropy_supported(logits, targets)) {
    return at::cross_entropy_loss(logits, targets, /*weight=*/{}, at::Reduction::Mean,
                                  ignore_index);
  }
  if (!at::GradMode::is_enabled() || !logits.requires_grad()) {
    const int64_t counted = targets.ne(ignore_index).sum().item<int64_t>();
    return (kernels::softmax_cross_entropy(logits, targets, ignore_index, false, 0.0f)
                .losses.sum() /
            static_cast<double>(counted))
        .to(at::kFloat);
  }
  return FusedCrossEntropy::apply(logits, targets, ignore_index);
}

}  // namespace stunt::train
