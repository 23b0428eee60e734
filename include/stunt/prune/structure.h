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

#include "stunt/model/architecture.h"
#include "stunt/model/hf_model.h"

namespace stunt::prune {

// The layout types and structure_layout() describe architectures, so they live with them in
// the model layer (stunt/model/architecture.h); structured pruning reads them under these names.
using model::AttentionModule;
using model::BlockStack;
using model::FfnModule;
using model::SlicedTensor;
using model::structure_layout;
using model::StructureLayout;

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
