#pragma once
/// The state of incremental (cached) decoding: the keys and values each decoder block has seen,
/// so that a generation step runs only the new tokens (HfModel::decode_step, generate.h).

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

namespace stunt::model {

/// Keys and values of every decoder block for the positions decoded so far. Rows are sequences
/// (prompts, or prompts × beams); reorder() follows beam search's choice of rows. The keys and
/// values are views into buffers that later steps fill in place: a copy of a cache shares them,
/// so decode with one copy only.
struct KvCache {
  /// Per decoder block: self-attention keys and values, [rows, kv_heads, length, head_dim].
  std::vector<at::Tensor> keys, values;
  /// Encoder-decoder models: per decoder block, the cross-attention keys and values of the
  /// encoder output, [rows, heads, encoder_length, head_dim], computed once by start_decoding.
  std::vector<at::Tensor> cross_keys, cross_values;
  /// Encoder-decoder models: the additive bias that hides encoder padding, or undefined.
  at::Tensor cross_bias;
  /// Keep-mask of every decoded position, [rows, length] int64 (1 = token, 0 = padding).
  at::Tensor attention_mask;
  /// Positions decoded so far.
  int64_t length = 0;

  /// Keeps rows `rows` (int64 indices into the current rows, repeats allowed), in that order.
  void reorder(const at::Tensor& rows);
};

}  // namespace stunt::model
