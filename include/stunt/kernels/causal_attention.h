#pragma once
/// Causal self-attention over whole sequences on the CPU: the forwards of calibration,
/// perplexity and prefill. ATen's fused CPU kernel scores every key of a 512-token window for
/// every query and masks half of them afterwards; this one scores only the keys a query may see
/// and shares each key/value head among the query heads that read it (grouped-query attention).

#include <ATen/core/Tensor.h>

namespace stunt::kernels {

/// Whether causal_attention takes these: float32 CPU tensors q [batch, heads, length, dim] and
/// k, v [batch, kv_heads, length, dim] with kv_heads dividing heads, the same length (no cache),
/// the last dimension contiguous, and no gradient wanted. Otherwise use ATen's attention.
bool causal_attention_supported(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v);

/// softmax(q kᵀ · scale, each query seeing itself and the keys before it) · v, in float32 with
/// float32 accumulation, as [batch, heads, length, dim]. The result is a view of a contiguous
/// [batch, length, heads, dim] tensor, so merging the heads back costs no copy. Each (sequence,
/// head) is computed alone: a sequence's result does not depend on the others in the batch.
at::Tensor causal_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                            double scale);

}  // namespace stunt::kernels
