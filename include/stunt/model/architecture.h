#pragma once
/// What each native architecture is made of, in one place per architecture (src/model/arch/):
/// its blocks, attention heads and FFN channels with the tensors a structural cut slices
/// (structured pruning), and which module feeds which linear layers (the smoothing mappings of
/// SmoothQuant, log equalization and AWQ).

#include <cstdint>
#include <string>
#include <vector>

#include "stunt/model/hf_model.h"

namespace stunt::model {

/// A stack of blocks: a decoder's layers, or T5's encoder or decoder.
struct BlockStack {
  /// "" for single-stack models, "encoder" / "decoder" for T5.
  std::string name;
  /// Checkpoint prefix of block i: prefix + i + ".", e.g. "model.layers.".
  std::string prefix;
  /// The config.json key holding the number of blocks.
  std::string count_key;
  int64_t count = 0;
  /// Index of the stack's first block in Model::num_blocks() order.
  int first_block = 0;
};

/// One tensor a structured cut slices: the checkpoint name, the dimension, and whether its units
/// are query heads (also the output projection's input) or key/value heads.
struct SlicedTensor {
  std::string name;
  int64_t dim = 0;
  bool key_value = false;
};

/// An attention module (self-attention, or T5's cross-attention) of one block.
struct AttentionModule {
  std::string prefix;
  int block = 0;
  /// The output projection, whose input is the heads' outputs side by side.
  std::string output_layer;
  /// T5's self-attention: the stack whose relative-position bias the heads share (-1: none).
  int shared_bias_stack = -1;
  std::vector<SlicedTensor> tensors;
};

/// The FFN of one block.
struct FfnModule {
  std::string prefix;
  int block = 0;
  /// The down projection, whose input is the FFN's channels.
  std::string output_layer;
  std::vector<SlicedTensor> tensors;
};

/// What structured pruning can cut in a model, read from its architecture and config.
struct StructureLayout {
  std::vector<BlockStack> stacks;
  std::vector<AttentionModule> attention;
  /// Why heads cannot be pruned in this architecture ("" when they can).
  std::string heads_refusal;
  int64_t heads = 0;
  int64_t kv_heads = 0;
  int64_t head_dim = 0;
  std::string heads_key, kv_heads_key, head_dim_key;
  /// Per stack: the relative-position bias tensor of T5 (empty otherwise), [buckets, heads].
  std::vector<std::string> position_bias;
  std::vector<FfnModule> ffns;
  int64_t ffn_width = 0;
  std::string ffn_width_key;
  /// Whether the model computes a language-model loss on its calibration input (Taylor scores).
  bool causal_lm = false;
};

/// A module whose output feeds some linear layers: a norm, or a linear layer. Smoothing moves
/// per-channel scales from the balance layers' inputs into it. Names are layer patterns
/// ("re:.*input_layernorm"), matched inside each block.
struct SmoothingMapping {
  std::string smooth;
  std::vector<std::string> balance;
};

/// What the compression methods need to know of one architecture.
struct ArchitectureTraits {
  /// SmoothQuant's and log equalization's default mappings (llm-compressor's): each norm to the
  /// linear layers it feeds.
  std::vector<SmoothingMapping> smoothquant_mappings;
  /// AWQ's default mappings (llm-compressor's): the norms' as above, and inside attention and
  /// the MLP the linear layer that feeds the next.
  std::vector<SmoothingMapping> awq_mappings;
};

/// The traits of `model_type` (empty mappings when Stunt has no defaults for it).
const ArchitectureTraits& architecture_traits(const std::string& model_type);

/// What structured pruning can cut in `model`, read from its architecture and config; throws
/// NotImplementedError for architectures without a layout.
StructureLayout structure_layout(const HfModel& model);

}  // namespace stunt::model
