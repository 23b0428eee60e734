#pragma once
/// The SwiGLU gate, silu(gate) · up, and its gradients, each in one pass: ATen's form writes
/// silu(gate) out and reads it back for the product (and its backward takes four passes).

#include <ATen/core/Tensor.h>

#include <utility>

namespace stunt::kernels {

/// Whether gated_silu() takes these inputs: contiguous float32 CPU tensors of one shape; no
/// autograd graph to record.
bool gated_silu_supported(const at::Tensor& gate, const at::Tensor& up);

/// silu(gate) · up = gate · sigmoid(gate) · up, into a new tensor. The exponential is Stunt's
/// (about 1 ulp), so results may differ from ATen's in the last bits; NaN and infinities
/// propagate as in ATen.
at::Tensor gated_silu(const at::Tensor& gate, const at::Tensor& up);

/// The gradients of gated_silu for an upstream gradient `grad` of the same shape, in one pass:
/// d/d up = grad · silu(gate), d/d gate = grad · up · s · (1 + gate · (1 - s)) with
/// s = sigmoid(gate). Inputs as gated_silu_supported() takes them (grad too).
std::pair<at::Tensor, at::Tensor> gated_silu_backward(const at::Tensor& grad,
                                                      const at::Tensor& gate, const at::Tensor& up);

}  // namespace stunt::kernels
