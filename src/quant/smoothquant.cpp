#include "stunt/quant/smoothquant.h"

#include <ATen/ATen.h>

#include "stunt/core/error.h"

namespace stunt::quant {
namespace {

/// The floor llm-compressor puts under smoothing scales, so that no channel is divided by 0.
constexpr double kMinScale = 1e-5;

}  // namespace

at::Tensor smoothquant_scales(const at::Tensor& activation_range,
                              const std::vector<at::Tensor>& balance_weights, double alpha) {
  STUNT_ASSERT(!balance_weights.empty());
  std::vector<at::Tensor> per_layer;
  for (const at::Tensor& w : balance_weights) {
    STUNT_ASSERT(w.dim() == 2 && w.size(1) == activation_range.size(0));
    per_layer.push_back(std::get<0>(w.abs().max(0)));
  }
  const at::Tensor weight_range = 2.0 * std::get<0>(at::stack(per_layer).max(0));
  const at::Tensor scales =
      at::where(weight_range > 0, activation_range.pow(alpha) / weight_range.pow(1 - alpha),
                activation_range);
  return at::clamp_min(scales, kMinScale);
}

at::Tensor log_equalization_scales(const at::Tensor& activation_range) {
  return at::clamp_min(activation_range / at::log2(2 + activation_range), kMinScale);
}

}  // namespace stunt::quant
