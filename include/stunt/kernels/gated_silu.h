#pragma once
/// The SwiGLU gate, silu(gate) · up, in one pass, for calibration forwards: ATen's form writes
/// silu(gate) out and reads it back for the product.

#include <ATen/core/Tensor.h>

namespace stunt::kernels {

/// Whether gated_silu() takes these inputs: contiguous float32 CPU tensors of one shape; no
/// autograd graph to record.
bool gated_silu_supported(const at::Tensor& gate, const at::Tensor& up);

/// silu(gate) · up = gate · sigmoid(gate) · up, into a new tensor. The exponential is Stunt's
/// (about 1 ulp), so results may differ from ATen's in the last bits; NaN and infinities
/// propagate as in ATen.
at::Tensor gated_silu(const at::Tensor& gate, const at::Tensor& up);

}  // namespace stunt::kernels
