#include "stunt/model/module_model.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <torch/nn/modules/embedding.h>

#include <set>

#include <nlohmann/json.hpp>

#include "stunt/core/atomic_file.h"
#include "stunt/core/error.h"
#include "stunt/core/strings.h"
#include "stunt/io/safetensors.h"

namespace stunt::nn {

at::Tensor LinearImpl::forward(const at::Tensor& input) {
  if (owner_ == nullptr) return torch::nn::LinearImpl::forward(input);
  // The layer's tensors, which are this module's parameters unless a method replaced them.
  return owner_->call_drop_in(*layer_, input, [this](const at::Tensor& x) {
    return at::linear(x, layer_->weight, layer_->bias);
  });
}

at::Tensor Conv2dImpl::forward(const at::Tensor& input) {
  if (owner_ == nullptr) return torch::nn::Conv2dImpl::forward(input);
  return owner_->call_drop_in(*layer_, input, [this](const at::Tensor& x) {
    // Stride, padding, dilation, groups and padding mode as the module's options say.
    return _conv_forward(x, layer_->weight);
  });
}

}  // namespace stunt::nn

namespace stunt::model {

ModuleModel::ModuleModel(std::shared_ptr<torch::nn::Module> module, Forward forward)
    : module_(std::move(module)), forward_(std::move(forward)) {
  STUNT_CHECK_AS(ValueError, module_ != nullptr, "ModuleModel: the module is null");
  std::set<const c10::TensorImpl*> layer_tensors;
  std::vector<std::pair<Layer*, nn::LinearImpl*>> linear_drop_ins;
  std::vector<std::pair<Layer*, nn::Conv2dImpl*>> conv_drop_ins;
  for (const auto& item : module_->named_modules("", /*include_self=*/false)) {
    const std::string& name = item.key();
    torch::nn::Module* m = item.value().get();
    Layer layer;
    layer.name = name;
    if (auto* linear = dynamic_cast<nn::LinearImpl*>(m)) {
      layer.class_name = "Linear";
      layer.weight = linear->weight;
      layer.bias = linear->bias;
      linear_drop_ins.emplace_back(nullptr, linear);
    } else if (auto* conv = dynamic_cast<nn::Conv2dImpl*>(m)) {
      layer.kind = LayerKind::Conv;
      layer.class_name = "Conv2d";
      layer.weight = conv->weight;
      layer.bias = conv->bias;
      conv_drop_ins.emplace_back(nullptr, conv);
    } else if (auto* linear = dynamic_cast<torch::nn::LinearImpl*>(m)) {
      layer.class_name = "Linear";
      layer.weight = linear->weight;
      layer.bias = linear->bias;
      layer.reachable = false;
    } else if (auto* conv = dynamic_cast<torch::nn::Conv2dImpl*>(m)) {
      layer.kind = LayerKind::Conv;
      layer.class_name = "Conv2d";
      layer.weight = conv->weight;
      layer.bias = conv->bias;
      layer.reachable = false;
    } else if (auto* embedding = dynamic_cast<torch::nn::EmbeddingImpl*>(m)) {
      layer.kind = LayerKind::Embedding;
      layer.class_name = "Embedding";
      layer.weight = embedding->weight;
      layer.padding_idx = embedding->options.padding_idx().value_or(-1);
      layer.reachable = false;
    } else {
      continue;
    }
    layer_tensors.insert(layer.weight.unsafeGetTensorImpl());
    if (layer.bias.defined()) layer_tensors.insert(layer.bias.unsafeGetTensorImpl());
    bindings_.push_back({name, layer.weight, layer.bias});
    Layer& added = add_layer(std::move(layer));
    if (!linear_drop_ins.empty() && linear_drop_ins.back().first == nullptr) {
      linear_drop_ins.back().first = &added;
    }
    if (!conv_drop_ins.empty() && conv_drop_ins.back().first == nullptr) {
      conv_drop_ins.back().first = &added;
    }
  }
  STUNT_CHECK_AS(ValueError, !layers().empty(), "ModuleModel: module ", module_->name(),
                 " holds no layer Stunt compresses (stunt::nn::Linear, stunt::nn::Conv2d, "
                 "torch::nn::Linear, torch::nn::Conv2d, torch::nn::Embedding)");
  for (const auto& item : module_->named_parameters(/*recurse=*/true)) {
    if (!layer_tensors.count(item.value().unsafeGetTensorImpl())) {
      add_tensor(item.key(), item.value());
    }
  }
  for (const auto& item : module_->named_buffers(/*recurse=*/true)) {
    if (item.value().defined()) add_tensor(item.key(), item.value());
  }
  // Attached last: a module that cannot be wrapped is left as it was.
  for (auto& [layer, drop_in] : linear_drop_ins) {
    STUNT_CHECK_AS(ValueError, drop_in->owner_ == nullptr, "ModuleModel: layer ", layer->name,
                   " already belongs to another ModuleModel; one model per module at a time");
  }
  for (auto& [layer, drop_in] : conv_drop_ins) {
    STUNT_CHECK_AS(ValueError, drop_in->owner_ == nullptr, "ModuleModel: layer ", layer->name,
                   " already belongs to another ModuleModel; one model per module at a time");
  }
  for (auto& [layer, drop_in] : linear_drop_ins) {
    drop_in->owner_ = this;
    drop_in->layer_ = layer;
    linear_drop_ins_.push_back(drop_in);
  }
  for (auto& [layer, drop_in] : conv_drop_ins) {
    drop_in->owner_ = this;
    drop_in->layer_ = layer;
    conv_drop_ins_.push_back(drop_in);
  }
}

ModuleModel::~ModuleModel() {
  for (nn::LinearImpl* drop_in : linear_drop_ins_) {
    drop_in->owner_ = nullptr;
    drop_in->layer_ = nullptr;
  }
  for (nn::Conv2dImpl* drop_in : conv_drop_ins_) {
    drop_in->owner_ = nullptr;
    drop_in->layer_ = nullptr;
  }
}

at::Tensor ModuleModel::call_drop_in(
    const Layer& layer, const at::Tensor& input,
    const std::function<at::Tensor(const at::Tensor&)>& plain) const {
  deliver_capture(layer, input);
  if (layer.forward) return layer.forward(input, layer);
  return plain(input);
}

BlockState ModuleModel::embed(const Batch& batch) {
  STUNT_CHECK_AS(NotImplementedError, static_cast<bool>(forward_),
                 "this ModuleModel has no forward function, so Stunt cannot run the module "
                 "itself (calibration, evaluation); pass one to the ModuleModel constructor");
  // The batch travels to head() in the state's context.
  BlockState state;
  if (batch.input_ids.defined()) state.context["input_ids"] = batch.input_ids;
  if (batch.attention_mask.defined()) state.context["attention_mask"] = batch.attention_mask;
  if (batch.decoder_input_ids.defined()) {
    state.context["decoder_input_ids"] = batch.decoder_input_ids;
  }
  for (size_t i = 0; i < batch.inputs.size(); ++i) {
    state.context[str("input.", i)] = batch.inputs[i];
  }
  return state;
}

void ModuleModel::run_block(int index, BlockState& state) {
  throw InternalError(str("a ModuleModel has no blocks; asked to run block ", index));
}

Output ModuleModel::head(BlockState& state) {
  Batch batch;
  auto take = [&](const std::string& key) {
    auto it = state.context.find(key);
    return it == state.context.end() ? at::Tensor() : it->second;
  };
  batch.input_ids = take("input_ids");
  batch.attention_mask = take("attention_mask");
  batch.decoder_input_ids = take("decoder_input_ids");
  for (size_t i = 0; state.context.count(str("input.", i)); ++i) {
    batch.inputs.push_back(take(str("input.", i)));
  }
  Output out;
  out.logits = forward_(batch);
  return out;
}

void ModuleModel::write_back() {
  c10::NoGradGuard no_grad;
  for (Binding& binding : bindings_) {
    Layer& l = layer(binding.name);
    if (!l.weight.is_same(binding.weight)) {
      binding.weight.copy_(l.weight);
      l.weight = binding.weight;
    }
    if (l.bias.defined() && binding.bias.defined() && !l.bias.is_same(binding.bias)) {
      binding.bias.copy_(l.bias);
      l.bias = binding.bias;
    }
  }
}

void ModuleModel::save(const std::filesystem::path& folder) const {
  std::filesystem::create_directories(folder);
  std::vector<io::NamedTensor> tensors;
  for (const auto& [name, tensor] : state_dict()) tensors.push_back({name, tensor.detach()});
  io::save_safetensors_sharded(folder, tensors);
  nlohmann::ordered_json config;
  config["architectures"] = {"StuntModuleModel"};
  config["model_type"] = "stunt-module";
  write_file_atomic(folder / "config.json", config.dump(2) + "\n");
}

}  // namespace stunt::model
