#include "stunt/model/architecture.h"

#include "detail/architectures.h"
#include "stunt/core/error.h"
#include "stunt/core/strings.h"

namespace stunt::model {
namespace detail {
namespace {

bool has_tensor(const NameSet& tensors, const std::string& name) { return tensors.count(name) > 0; }

}  // namespace

NameSet checkpoint_names(const Model& model) {
  const std::vector<std::string> names = model.tensor_names();
  NameSet out(names.begin(), names.end());
  for (const model::Layer* layer : model.layers()) {
    out.insert(layer->name + ".weight");
    if (layer->bias.defined()) out.insert(layer->name + ".bias");
  }
  return out;
}

// The first of `prefixes` under which `probe` is a tensor of the model.
std::string prefix_of(const NameSet& tensors, const std::vector<std::string>& prefixes,
                      const std::string& probe) {
  for (const std::string& p : prefixes) {
    if (has_tensor(tensors, p + probe)) return p;
  }
  throw FormatError(str("no tensor ", probe, " under any of the expected prefixes"));
}

// `relative` tensors (name, dim, key/value) under `prefix` that the model has: biases are
// optional, so absent ones are skipped.
std::vector<SlicedTensor> present(const NameSet& tensors, const std::string& prefix,
                                  const std::vector<SlicedTensor>& relative) {
  std::vector<SlicedTensor> out;
  for (SlicedTensor t : relative) {
    t.name = prefix + t.name;
    if (has_tensor(tensors, t.name)) out.push_back(t);
  }
  return out;
}

}  // namespace detail

const ArchitectureTraits& architecture_traits(const std::string& model_type) {
  static const ArchitectureTraits llama = detail::llama_traits();
  static const ArchitectureTraits none;
  if (model_type == "llama" || model_type == "mistral" || model_type == "qwen2") return llama;
  return none;
}

StructureLayout structure_layout(const HfModel& model) {
  const HfConfig& c = model.config();
  const detail::NameSet tensors = detail::checkpoint_names(model);
  const std::string type = c.model_type();
  StructureLayout layout;
  if (type == "llama" || type == "mistral" || type == "qwen2") {
    detail::llama_layout(layout, c, tensors);
  } else if (type == "t5") {
    detail::t5_layout(layout, c, tensors);
  } else if (type == "bert") {
    detail::bert_layout(layout, c, tensors);
  } else if (type == "gpt2") {
    detail::gpt2_layout(layout, c, tensors);
  } else {
    throw NotImplementedError(str("structured pruning does not know model_type ", type,
                                  "; it supports llama, mistral, qwen2, t5, bert and gpt2"));
  }
  return layout;
}

}  // namespace stunt::model
