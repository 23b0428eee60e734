#pragma once
// The native architectures, one file each under src/model/arch/.

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "stunt/io/checkpoint.h"
#include "stunt/model/architecture.h"
#include "stunt/model/hf_model.h"

namespace stunt::model::detail {

// Each builds its model from `config` and the tensors of `weights` (named as transformers
// names them), converted to `dtype`. `source` is the folder or file the model came from.
using ArchitectureLoader = std::unique_ptr<HfModel> (*)(HfConfig config,
                                                        const std::filesystem::path& source,
                                                        std::unique_ptr<io::Checkpoint> weights,
                                                        c10::ScalarType dtype);

std::unique_ptr<HfModel> load_bert(HfConfig config, const std::filesystem::path& source,
                                   std::unique_ptr<io::Checkpoint> weights, c10::ScalarType dtype);
std::unique_ptr<HfModel> load_llama(HfConfig config, const std::filesystem::path& source,
                                    std::unique_ptr<io::Checkpoint> weights, c10::ScalarType dtype);
std::unique_ptr<HfModel> load_gpt2(HfConfig config, const std::filesystem::path& source,
                                   std::unique_ptr<io::Checkpoint> weights, c10::ScalarType dtype);
std::unique_ptr<HfModel> load_t5(HfConfig config, const std::filesystem::path& source,
                                 std::unique_ptr<io::Checkpoint> weights, c10::ScalarType dtype);

/// The loader for `model_type`, or nullptr.
ArchitectureLoader find_architecture(const std::string& model_type);

// Layouts for structured pruning (stunt/model/architecture.h), probed from the checkpoint names
// of a model's tensors without materialising its state dict (which would convert every weight
// stored in another dtype).
using NameSet = std::set<std::string>;
NameSet checkpoint_names(const Model& model);
/// The first of `prefixes` under which `probe` is a tensor of the model.
std::string prefix_of(const NameSet& tensors, const std::vector<std::string>& prefixes,
                      const std::string& probe);
/// `relative` tensors (name, dim, key/value) under `prefix` that the model has: biases are
/// optional, so absent ones are skipped.
std::vector<SlicedTensor> present(const NameSet& tensors, const std::string& prefix,
                                  const std::vector<SlicedTensor>& relative);
void llama_layout(StructureLayout& layout, const HfConfig& c, const NameSet& tensors);
void t5_layout(StructureLayout& layout, const HfConfig& c, const NameSet& tensors);
void bert_layout(StructureLayout& layout, const HfConfig& c, const NameSet& tensors);
void gpt2_layout(StructureLayout& layout, const HfConfig& c, const NameSet& tensors);
ArchitectureTraits llama_traits();

/// A linear layer of block `block` (-1: outside blocks); bias may be undefined.
inline Layer linear_layer(std::string name, at::Tensor weight, at::Tensor bias, int block,
                          std::string class_name = "Linear") {
  Layer layer;
  layer.name = std::move(name);
  layer.kind = LayerKind::Linear;
  layer.class_name = std::move(class_name);
  layer.weight = std::move(weight);
  layer.bias = std::move(bias);
  layer.block = block;
  return layer;
}

/// A token embedding outside the blocks.
inline Layer embedding_layer(std::string name, at::Tensor weight,
                             std::optional<int64_t> padding_idx = std::nullopt) {
  Layer layer;
  layer.name = std::move(name);
  layer.kind = LayerKind::Embedding;
  layer.class_name = "Embedding";
  // transformers gives nn.Embedding the pad token only when it names a row.
  if (padding_idx && *padding_idx >= 0 && *padding_idx < weight.size(0)) {
    layer.padding_idx = *padding_idx;
  }
  layer.weight = std::move(weight);
  return layer;
}

/// An output head sharing the embedding `partner`'s weight, as tie_word_embeddings makes it.
inline Layer tied_head(std::string name, const Layer& partner) {
  Layer layer = linear_layer(std::move(name), partner.weight, {}, -1);
  layer.tied_to = partner.name;
  return layer;
}

/// Checks input_ids (int64, [batch, seq], ids in [0, vocab)) and the optional attention mask
/// ([batch, seq] of 0/1); throws ValueError naming the problem.
void check_token_batch(const at::Tensor& input_ids, const at::Tensor& attention_mask,
                       int64_t vocab_size, int64_t max_positions, const char* what);

}  // namespace stunt::model::detail
