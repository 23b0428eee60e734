#pragma once
/// AWQ (Lin et al. 2023) as llm-compressor runs it: per-channel scales from the mean activation
/// magnitude (and, with duo scaling, the mean normalized weight magnitude), chosen from a grid by
/// the error of the quantized layer's output. The search over the model lives in the recipe's
/// AWQModifier; the arithmetic of each step is here.

#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

#include "stunt/quant/quant_args.h"

namespace stunt::quant {

/// One point of AWQ's grid: s = x_mean^ratio (duo: / (w_mean^(1 - ratio) + 1e-4)).
struct AwqCandidate {
  double ratio = 0;
  bool duo = false;
};

/// llm-compressor's grid for `n_grid` points and duo_scaling "false", "true" (ratio 0 without
/// duo, then n_grid - 1 ratios with it) or "both" (n_grid / 2 ratios, each without and with).
std::vector<AwqCandidate> awq_grid(int n_grid, const std::string& duo_scaling);

/// The duo term: per input channel, the mean over the rows of the quantized balance weights of
/// |w| divided by the maximum of its quantization group (channel: the row; group: group_size
/// columns; tensor: the whole weight) plus 1e-6. `args[i]` null: weight i is not quantized and
/// left out, as llm-compressor leaves it out. float64 [in].
at::Tensor awq_weight_mean(const std::vector<at::Tensor>& weights,
                           const std::vector<const QuantArgs*>& args);

/// The scales of `candidate`, normalized by sqrt(max * min), non-finite ones set to 1, in
/// `dtype`. `x_mean` float [in], `w_mean` float64 [in].
at::Tensor awq_scales(const at::Tensor& x_mean, const at::Tensor& w_mean,
                      const AwqCandidate& candidate, c10::ScalarType dtype);

/// The weight AWQ scores for `scales`: round to nearest of w * s (memoryless min/max qparams of
/// `args`), divided by s again.
at::Tensor awq_fake_quantized(const at::Tensor& weight, const at::Tensor& scales,
                              const QuantArgs& args);

}  // namespace stunt::quant
