#pragma once
/// Rotary position embedding (the Llama/NeoX form: the two halves of each head rotate
/// together) in one pass over the heads, for inference and calibration alike.

#include <ATen/core/Tensor.h>

namespace stunt::kernels {

/// Whether rotary_embedding() takes these inputs: float32 CPU x [batch, heads, length, dim] with
/// dim even and contiguous; cos and sin float32 [batch or 1, length, dim], dim contiguous; no
/// autograd graph to record.
bool rotary_embedding_supported(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin);

/// x·cos + rotate_half(x)·sin, rotate_half(x) = (-x[dim/2:], x[:dim/2]), with cos and sin
/// broadcast over the heads. The result has x's memory layout and is bit-identical to ATen's
/// elementwise form: both products are rounded to float32 before the sum (no fused multiply-add).
at::Tensor rotary_embedding(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin);

}  // namespace stunt::kernels
