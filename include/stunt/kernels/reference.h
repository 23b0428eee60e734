#pragma once
/// The oracles: plain-LibTorch forms of the fast CPU kernels (kernels/cpu), computed and
/// returned in float64 (lowest_per_row: bool), so that a test measures the kernel's own error. Slow
/// and obviously right, they accept whatever their kernel accepts;
/// tests/unit/kernels/kernel_oracle_test.cpp holds every kernel to its oracle over a range of
/// shapes, the way llama.cpp's test-backend-ops does. Same arguments as the kernel of the same
/// name in stunt/kernels/.

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace stunt::kernels::reference {

/// softmax(q kᵀ · scale, each query seeing itself and the keys before it) · v; key/value heads
/// serve heads / kv_heads query heads each. [batch, heads, length, dim].
at::Tensor causal_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                            double scale);

/// Σ over rows of x² per column of x [rows, columns].
at::Tensor column_square_sums(const at::Tensor& x);

/// silu(gate) · up.
at::Tensor gated_silu(const at::Tensor& gate, const at::Tensor& up);

/// input · weightᵀ + bias (bias may be undefined).
at::Tensor linear(const at::Tensor& input, const at::Tensor& weight, const at::Tensor& bias);

/// x / sqrt(mean(x²) + eps) · weight over the last dimension.
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps);

/// x · cos + rotate_half(x) · sin, cos and sin [batch or 1, length, dim] broadcast over heads.
at::Tensor rotary_embedding(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin);

/// bool [rows, columns]: the first k columns of a stable ascending sort of each row.
at::Tensor lowest_per_row(const at::Tensor& scores, int64_t k);

}  // namespace stunt::kernels::reference
