#pragma once
/// The per-channel scales that smoothing moves from a layer's input activations into its
/// weights (SmoothQuant, log equalization). Dividing the activations by s (through the norm that
/// produces them) and multiplying the weights' input columns by s leaves the product unchanged
/// and makes the activations easier to quantize.

#include <ATen/core/Tensor.h>

#include <vector>

namespace stunt::quant {

/// SmoothQuant (Xiao et al. 2022, eq. 4), as llm-compressor computes it: per input channel j,
/// s_j = range_j^alpha / (2 max_i |W_ij|)^(1 - alpha) over every balance weight [out, in], where
/// range_j = max - min of the activations; s_j = range_j where the weights are all zero. At
/// least 1e-5. `activation_range` float [in].
at::Tensor smoothquant_scales(const at::Tensor& activation_range,
                              const std::vector<at::Tensor>& balance_weights, double alpha);

/// Logarithmic activation equalization: s_j = range_j / log2(2 + range_j), at least 1e-5.
at::Tensor log_equalization_scales(const at::Tensor& activation_range);

}  // namespace stunt::quant
