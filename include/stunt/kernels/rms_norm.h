#pragma once
/// RMSNorm (Llama, T5) and its gradients in one pass per row: ATen's form makes five passes over
/// the activations (square, mean, add, rsqrt, two products) and its backward about ten.

#include <ATen/core/Tensor.h>

#include <utility>

namespace stunt::kernels {

/// Whether rms_norm() takes these inputs: contiguous float32 CPU x [..., width] and weight
/// [width]; no autograd graph to record.
bool rms_norm_supported(const at::Tensor& x, const at::Tensor& weight);

/// x · 1/sqrt(mean(x²) + eps) · weight over the last dimension. The products round as ATen's
/// do; the mean is summed in another order, so results may differ from ATen's in the last bit.
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps);

/// The gradients of rms_norm for an upstream gradient `grad` shaped as x, with r = 1/sqrt(mean(x²)
/// + eps) recomputed per row: d/dx = r · w · grad - x · r³ · mean(grad · w · x) and
/// d/dw = Σ over rows of grad · x · r. Inputs as rms_norm_supported() takes them (grad too).
std::pair<at::Tensor, at::Tensor> rms_norm_backward(const at::Tensor& grad, const at::Tensor& x,
                                                    const at::Tensor& weight, double eps);

}  // namespace stunt::kernels
