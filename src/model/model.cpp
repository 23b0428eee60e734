#include "stunt/model/model.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <algorithm>
#include <regex>
#include <set>

#include "detail/nn_ops.h"
#include "stunt/core/error.h"
#include "stunt/core/strings.h"
#include "stunt/kernels/onednn_linear.h"

namespace stunt::model {

const char* layer_kind_name(LayerKind kind) {
  switch (kind) {
    case LayerKind::Linear:
      return "Linear";
    case LayerKind::Conv:
      return "Conv";
    case LayerKind::Embedding:
      return "Embedding";
  }
  return "?";
}

std::vector<Layer*> Model::layers() const {
  std::vector<Layer*> out;
  out.reserve(layers_.size());
  for (const auto& layer : layers_) out.push_back(layer.get());
  return out;
}

Layer& Model::layer(const std::string& name) const {
  auto it = layers_by_name_.find(name);
  if (it != layers_by_name_.end()) return *it->second;
  // Suggest layers that share the last component, the usual slip being a wrong prefix.
  const std::string leaf = name.substr(name.rfind('.') + 1);
  std::vector<std::string> similar;
  for (const auto& layer : layers_) {
    if (similar.size() < 3 && layer->name.size() >= leaf.size() &&
        layer->name.compare(layer->name.size() - leaf.size(), leaf.size(), leaf) == 0) {
      similar.push_back(layer->name);
    }
  }
  throw ValueError(str("model has no layer \"", name, "\"",
                       similar.empty() ? "; `compress inspect MODEL` lists the layers"
                                       : "; similar: " + join(similar, ", ")));
}

std::vector<Layer*> Model::block_layers(int index) const {
  std::vector<Layer*> out;
  for (const auto& layer : layers_) {
    if (layer->block == index) out.push_back(layer.get());
  }
  return out;
}

namespace {

bool matches(const Layer& layer, const std::string& target,
             std::map<std::string, std::regex>& compiled) {
  if (target.rfind("re:", 0) == 0) {
    auto it = compiled.find(target);
    if (it == compiled.end()) {
      try {
        it = compiled.emplace(target, std::regex(target.substr(3), std::regex::ECMAScript)).first;
      } catch (const std::regex_error& e) {
        throw ValueError(
            str("target \"", target, "\" is not a valid regular expression (", e.what(), ")"));
      }
    }
    // Python's re.match: anchored at the start, not at the end.
    return std::regex_search(layer.name, it->second, std::regex_constants::match_continuous);
  }
  if (target == layer.name || target == layer.class_name) return true;
  return target == "Linear" && layer.class_name == "Conv1D";
}

}  // namespace

std::vector<Layer*> Model::match(const std::vector<std::string>& targets,
                                 const std::vector<std::string>& ignore) const {
  std::map<std::string, std::regex> compiled;
  std::vector<Layer*> out;
  for (const auto& layer : layers_) {
    bool selected = std::any_of(targets.begin(), targets.end(),
                                [&](const std::string& t) { return matches(*layer, t, compiled); });
    if (!selected) continue;
    bool ignored = std::any_of(ignore.begin(), ignore.end(),
                               [&](const std::string& t) { return matches(*layer, t, compiled); });
    if (!ignored) out.push_back(layer.get());
  }
  return out;
}

Output Model::forward(const Batch& batch) {
  c10::NoGradGuard no_grad;
  return forward_blocks(batch);
}

Output Model::forward_with_grad(const Batch& batch) {
  at::AutoGradMode grad_mode(true);
  return forward_blocks(batch);
}

Output Model::forward_blocks(const Batch& batch) {
  BlockState state = embed(batch);
  std::vector<at::Tensor> outputs;
  std::vector<AttentionRecord> attentions;
  for (int i = 0; i < num_blocks(); ++i) {
    if (!keep_attentions_) {
      run_block(i, state);
    } else {
      std::vector<AttentionRecord> records;
      {
        detail::AttentionRecording recording(records);
        run_block(i, state);
      }
      STUNT_CHECK_AS(NotImplementedError, !records.empty(), architecture(), " block ", i,
                     " ran no attention that Stunt computes itself, so its attention "
                     "probabilities cannot be kept (attention distillation needs a Hugging Face "
                     "or GGUF model, not a TorchScript module)");
      attentions.push_back(records.front());  // self-attention; a decoder's cross-attention follows
    }
    if (keep_block_outputs_) outputs.push_back(state.hidden);
  }
  Output out = head(state);
  out.block_outputs = std::move(outputs);
  out.attentions = std::move(attentions);
  return out;
}

std::vector<std::pair<std::string, at::Tensor>> Model::prepare_training() {
  std::vector<std::pair<std::string, at::Tensor>> out;
  std::set<const c10::TensorImpl*> seen;
  auto make_trainable = [&](const std::string& name, at::Tensor& t) {
    if (!t.defined() || !t.is_floating_point() || !seen.insert(t.unsafeGetTensorImpl()).second) {
      return;
    }
    if (!t.requires_grad()) {
      c10::NoGradGuard no_grad;
      // set_ swaps the storage under the same tensor, so that architectures holding a handle
      // to it (and tied layers, which share it) see the owned copy. Tensors made by detach()
      // (a model rebuilt from another's tensors) forbid that unless allowed.
      t.unsafeGetTensorImpl()->set_allow_tensor_metadata_change(true);
      t.set_(t.clone(at::MemoryFormat::Contiguous));
      t.requires_grad_(true);
    }
    out.emplace_back(name, t);
  };
  for (const auto& layer : layers_) {
    make_trainable(layer->name + ".weight", layer->weight);
    make_trainable(layer->name + ".bias", layer->bias);
  }
  for (auto& [name, tensor] : tensors_) make_trainable(name, tensor);
  return out;
}

at::Tensor Model::dropout(const at::Tensor& x, double p) const {
  return training_ && p > 0 ? detail::dropout(x, p) : x;
}

void Model::deliver_capture(const Layer& layer, const at::Tensor& input) const {
  if (layer.capture && capture_) capture_(layer, input);
}

bool Model::weight_shared_with_head(const Layer& embedding) const {
  for (const auto& other : layers_) {
    if (other->tied_to == embedding.name && other->weight.is_same(embedding.weight)) return true;
  }
  return false;
}

at::Tensor Model::call(const Layer& layer, const at::Tensor& input) const {
  deliver_capture(layer, input);
  if (layer.forward) return layer.forward(input, layer);
  switch (layer.kind) {
    case LayerKind::Linear:
      if (CalibrationKernelScope::active() &&
          kernels::onednn_linear_supported(input, layer.weight, layer.bias)) {
        return kernels::onednn_linear(input, layer.weight, layer.bias);
      }
      return at::linear(input, layer.weight, layer.bias);
    case LayerKind::Embedding: {
      // A table the head shares gets its lookup's gradient as sparse rows, which autograd adds
      // into the head's dense gradient in place; a dense one would zero a whole [vocab, hidden]
      // buffer and add it. The trainer densifies a gradient left sparse (the head unused).
      const bool sparse = at::GradMode::is_enabled() && layer.weight.requires_grad() &&
                          weight_shared_with_head(layer);
      return at::embedding(layer.weight, input, layer.padding_idx, /*scale_grad_by_freq=*/false,
                           sparse);
    }
    case LayerKind::Conv:
      break;
  }
  throw InternalError(str("layer ", layer.name, " of kind ", layer_kind_name(layer.kind),
                          " has no plain forward in a native model"));
}

std::vector<std::pair<std::string, at::Tensor>> Model::state_dict() const {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const auto& [name, tensor] : tensors_) out.emplace_back(name, tensor);
  std::map<std::string, const Layer*> by_name;
  for (const auto& layer : layers_) by_name[layer->name] = layer.get();
  for (const auto& layer : layers_) {
    if (!layer->tied_to.empty()) {
      // A tied layer is written only once it no longer shares its partner's weight.
      auto partner = by_name.find(layer->tied_to);
      if (partner != by_name.end() && partner->second->weight.is_same(layer->weight)) continue;
    }
    at::Tensor weight = layer->stored_transposed ? layer->weight.t() : layer->weight;
    out.emplace_back(layer->name + ".weight", weight.contiguous());
    if (layer->bias.defined()) out.emplace_back(layer->name + ".bias", layer->bias);
  }
  return out;
}

Layer& Model::add_layer(Layer layer) {
  STUNT_ASSERT(!layers_by_name_.count(layer.name), "duplicate layer ", layer.name);
  layers_.push_back(std::make_unique<Layer>(std::move(layer)));
  Layer& added = *layers_.back();
  layers_by_name_[added.name] = &added;
  return added;
}

at::Tensor* Model::find_tensor(const std::string& name) {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

at::Tensor Model::run_submodule(int index, const std::string& name, const at::Tensor& input,
                                const BlockState& state) {
  throw NotImplementedError(str(architecture(), " does not run parts of its blocks (asked for '",
                                name, "' of block ", index, "); supported: llama, mistral, qwen2"));
}

std::vector<std::string> Model::tensor_names() const {
  std::vector<std::string> out;
  for (const auto& [name, tensor] : tensors_) out.push_back(name);
  return out;
}

at::Tensor& Model::add_tensor(const std::string& name, at::Tensor tensor) {
  auto [it, inserted] = tensors_.emplace(name, std::move(tensor));
  STUNT_ASSERT(inserted, "duplicate tensor ", name);
  return it->second;
}

namespace {
thread_local bool calibration_kernels = false;
}  // namespace

CalibrationKernelScope::CalibrationKernelScope() : previous_(calibration_kernels) {
  calibration_kernels = true;
}

CalibrationKernelScope::~CalibrationKernelScope() { calibration_kernels = previous_; }

bool CalibrationKernelScope::active() { return calibration_kernels; }

namespace {

void check_reachable(const Layer& layer, const char* what) {
  STUNT_CHECK_AS(ValueError, layer.reachable, "layer ", layer.name,
                 " is a plain torch::nn::", layer.class_name,
                 " whose forward Stunt does not run, so Stunt cannot ", what,
                 "; build it as stunt::nn::", layer.class_name,
                 " (stunt/model/module_model.h), a drop-in with the same constructor and "
                 "parameters");
}

}  // namespace

InputCapture::InputCapture(Model& model, const std::vector<Layer*>& layers, Receiver receive)
    : model_(model), layers_(layers) {
  STUNT_CHECK_AS(LifecycleError, !model.capture_,
                 "an input capture is already active on this model; end it first");
  for (const Layer* layer : layers_) check_reachable(*layer, "capture its inputs");
  model_.capture_ = std::move(receive);
  for (Layer* layer : layers_) layer->capture = true;
}

InputCapture::~InputCapture() {
  for (Layer* layer : layers_) layer->capture = false;
  model_.capture_ = nullptr;
}

LayerSwap::LayerSwap(Layer& layer, LayerForward forward) : layer_(layer) {
  check_reachable(layer, "replace its forward (fake quantization)");
  previous_ = std::move(layer.forward);
  layer_.forward = std::move(forward);
}

LayerSwap::~LayerSwap() {
  if (!released_) layer_.forward = std::move(previous_);
}

}  // namespace stunt::model
