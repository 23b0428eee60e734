#pragma once
/// Structured pruning that really shrinks a model: whole blocks (transformer layers), attention
/// heads and FFN channels are cut out of the tensors, and config.json says the new sizes, so the
/// result is a smaller Hugging Face model that transformers loads as it is.
///
/// transformers builds every layer of a model from one config, so what is cut must leave the
/// same shape in every block: the same number of heads (and, with grouped-query attention, the
/// same number of query heads per key/value head) and the same FFN width everywhere. Which heads
/// and channels go may differ from block to block, except T5's self-attention heads, which share
/// one relative-position bias per stack and so are chosen once per stack.

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "stunt/model/hf_model.h"

namespace stunt::prune {

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

/// The layout of `model`; throws NotImplementedError for architectures structured pruning does
/// not know.
StructureLayout structure_layout(const model::HfModel& model);

/// A copy of `model` without the blocks `drop` (indices within `stack`, any order); the others
/// are renumbered in order. T5's relative-position bias stays with the stack's new first block.
/// `where` prefixes errors (the recipe path). Throws ValueError for an index out of range or
/// when every block would go.
std::unique_ptr<model::HfModel> drop_blocks(const model::HfModel& model, const std::string& stack,
                                            const std::vector<int64_t>& drop,
                                            const std::string& where);

/// A copy of `model` keeping, in attention module i of structure_layout(), the query heads
/// kept[i] (sorted). Every module must keep the same number; with grouped-query attention every
/// key/value head must keep the same number of its query heads (all of them keep their
/// key/value head), without it a key/value head goes with its query head.
std::unique_ptr<model::HfModel> keep_heads(const model::HfModel& model,
                                           const std::vector<std::vector<int64_t>>& kept,
                                           const std::string& where);

/// A copy of `model` keeping, in FFN i of structure_layout(), the channels kept[i] (int64,
/// sorted); every FFN keeps the same number.
std::unique_ptr<model::HfModel> keep_ffn_channels(const model::HfModel& model,
                                                  const std::vector<at::Tensor>& kept,
                                                  const std::string& where);

enum class Importance {
  /// ‖x_c‖ · ‖W_out[:, c]‖ summed over a unit's channels: its output's typical size.
  Activation,
  /// |Σ_c Σ_i W_out[i, c] ∂L/∂W_out[i, c]| per calibration batch, summed: the first-order change
  /// of the language-model loss when the unit is removed (Molchanov et al. 2019; for heads,
  /// Michel et al. 2019). Causal language models only.
  Taylor,
};
/// "activation" / "taylor"; throws ValueError naming `where` otherwise.
Importance parse_importance(const std::string& name, const std::string& where);

/// The importance of each unit (a head: `unit` = head_dim consecutive input channels; an FFN
/// channel: `unit` = 1) of the output projections `layers` (names), each [in_features / unit],
/// measured over `calibration`. Taylor needs a causal language model (`causal_lm`).
std::vector<at::Tensor> unit_importance(model::HfModel& model,
                                        const std::vector<std::string>& layers, int64_t unit,
                                        const std::vector<model::Batch>& calibration,
                                        Importance importance, bool causal_lm,
                                        const std::string& where);

/// The query heads each attention module keeps when `prune` heads of each go, the least
/// important first. `head_scores` are unit_importance() of the modules' output layers, [heads]
/// each. Throws ValueError naming `where` when `prune` is out of range or does not fit the
/// key/value grouping.
std::vector<std::vector<int64_t>> choose_heads(const StructureLayout& layout,
                                               const std::vector<at::Tensor>& head_scores,
                                               int64_t prune, const std::string& where);

/// The channels each FFN keeps when `prune` channels of each go, the least important first.
std::vector<at::Tensor> choose_channels(const std::vector<at::Tensor>& channel_scores,
                                        int64_t prune);

}  // namespace stunt::prune
