#pragma once
// The functional pieces the native architectures share: norms, activations, attention with
// masks, rotary position embeddings.

#include <ATen/core/Tensor.h>

#include <optional>
#include <string>
#include <vector>

#include "stunt/model/hf_config.h"
#include "stunt/model/kv_cache.h"
#include "stunt/model/model.h"

namespace stunt::model::detail {

/// RMSNorm as Llama and T5 compute it: in float32, then back to the input's dtype, times weight.
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps);

/// The activation transformers calls `name`; throws FormatError (via config) for unknown names.
at::Tensor activation(const std::string& name, const at::Tensor& x);
/// activation(name, gate) · up, the gated MLP's product (SwiGLU, gated GELU).
at::Tensor gated_activation(const std::string& name, const at::Tensor& gate, const at::Tensor& up);
/// Whether activation() knows `name`.
bool is_known_activation(const std::string& name);

/// [batch, seq] tokens → [batch, heads, seq, head_dim].
at::Tensor split_heads(const at::Tensor& x, int64_t heads, int64_t head_dim);
/// [batch, heads, seq, head_dim] → [batch, seq, heads * head_dim].
at::Tensor merge_heads(const at::Tensor& x);

/// The value masked attention scores get: the dtype's lowest finite value rather than -inf, so
/// that a fully masked row (a padding query) gives uniform weights instead of NaN, as
/// transformers arranges.
double mask_value(c10::ScalarType dtype);

/// An additive attention mask [batch, 1, q_len, k_len] (or [batch, 1, 1, k_len] when not causal)
/// from a [batch, k_len] keep-mask, causality and a sliding window (0: none), in `dtype`.
/// Undefined when only plain causality or nothing is to be masked: attention() then takes its
/// fast causal path. q_len may be shorter than k_len (cached keys come first).
at::Tensor attention_bias(const at::Tensor& keep_mask, int64_t q_len, int64_t k_len, bool causal,
                          c10::ScalarType dtype, int64_t window = 0);

/// attention_bias for a step of cached decoding: q_len new queries after k_len - q_len cached
/// keys, keep_mask [batch, k_len]. Undefined only when attention(..., causal = q_len > 1) is
/// then right: nothing is masked and either q_len == k_len (the fast causal path) or q_len == 1
/// (the new token sees every key). SDPA's is_causal aligns its mask top-left, which is wrong
/// after cached keys, so other cases get the causal mask spelled out.
at::Tensor cached_attention_bias(const at::Tensor& keep_mask, int64_t q_len, int64_t k_len,
                                 c10::ScalarType dtype, int64_t window = 0);

/// Position ids of a left-padded batch as transformers' generate computes them: the running
/// count of kept tokens minus one (padding gets 0). keep_mask: [batch, len] → int64 [batch, len].
at::Tensor positions_from_mask(const at::Tensor& keep_mask);

/// The last `count` positions of x [rows, len, ...] (all of them when count is 0).
at::Tensor last_positions(const at::Tensor& x, int64_t count);

/// Appends new_mask [rows, new] (undefined: all ones) to the cache's keep-mask and returns it.
at::Tensor extend_cache_mask(KvCache& cache, const at::Tensor& new_mask, int64_t rows,
                             int64_t new_len);

/// Appends k, v [rows, heads, new, dim] to the cached keys/values of a block (undefined before
/// the first step) and returns the whole keys and values. The cached tensors are views into
/// buffers with room to grow (doubling), so a decoding step copies only its new positions
/// instead of the whole cache.
std::pair<at::Tensor, at::Tensor> append_kv(at::Tensor& cached_k, at::Tensor& cached_v,
                                            const at::Tensor& k, const at::Tensor& v);

/// Training-mode dropout at rate p (0 <= p < 1), differentiable: kernels::dropout_with_seed with
/// one seed from ATen's generator, the same seed masking the gradient. Float32 CPU tensors take
/// it; others fall back to at::dropout.
at::Tensor dropout(const at::Tensor& x, double p);

/// Scaled dot-product attention. q: [b, h, q, d]; k, v: [b, kv_h, k, d] (grouped-query when
/// kv_h < h); bias: additive, broadcastable to [b, h, q, k], or undefined; causal applies only
/// when bias is undefined. dropout_p drops attention probabilities (training only).
at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                     const at::Tensor& bias, bool causal, double scale, double dropout_p = 0.0);

/// While alive, attention() on this thread computes its probabilities as explicit products and
/// appends them, with the values, to `records` (Model::set_keep_attentions). Nests: the inner
/// recording takes the calls until it ends.
class AttentionRecording {
 public:
  explicit AttentionRecording(std::vector<AttentionRecord>& records);
  ~AttentionRecording();
  AttentionRecording(const AttentionRecording&) = delete;
  AttentionRecording& operator=(const AttentionRecording&) = delete;

 private:
  std::vector<AttentionRecord>* previous_;
};

/// Rotary position embedding as transformers computes it (default, linear, llama3 scaling).
class Rotary {
 public:
  /// From config: rope_theta / rope_scaling (transformers 4) or rope_parameters (5).
  Rotary(const HfConfig& config, int64_t head_dim);
  /// cos and sin tables, [batch or 1, seq, head_dim], for integer positions [batch or 1, seq].
  std::pair<at::Tensor, at::Tensor> tables(const at::Tensor& positions,
                                           c10::ScalarType dtype) const;
  /// x: [b, h, s, d]; cos/sin from tables().
  static at::Tensor apply(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin);

 private:
  at::Tensor inv_freq_;
  double attention_scaling_ = 1.0;
};

}  // namespace stunt::model::detail
