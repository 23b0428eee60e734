#pragma once
/// RMSNorm (Llama, T5) in one pass per row, for calibration forwards: ATen's form makes five
/// passes over the activations (square, mean, add, rsqrt, two products).

#include <ATen/core/Tensor.h>

namespace stunt::kernels {

/// Whether rms_norm() takes these inputs: contiguous float32 CPU x [..., width] and weight
/// [width]; no autograd graph to record.
bool rms_norm_supported(const at::Tensor& x, const at::Tensor& weight);

/// x · 1/sqrt(mean(x²) + eps) · weight over the last dimension. The products round as ATen's
/// do; the mean is summed in another order, so results may differ from ATen's in the last bit.
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps);

}  // namespace stunt::kernels
