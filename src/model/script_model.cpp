// ScriptModel: TorchScript archives behind the Model interface. The graph instrumentation that
// captures layer inputs and swaps layer forwards is in script_instrument.cpp.
#include "stunt/model/script_model.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/serialization/export.h>
#include <torch/csrc/jit/serialization/import.h>

#include <optional>
#include <set>

#include "detail/script_instrument.h"
#include "stunt/core/atomic_file.h"
#include "stunt/core/error.h"

namespace fs = std::filesystem;

namespace stunt::model {

struct ScriptModel::Impl {
  fs::path source;
  torch::jit::Module module;
  std::vector<detail::ScriptLayerRef> refs;
  detail::ScriptRuntime runtime;
  detail::InstrumentedForward forward;
};

namespace {

std::string first_line(const char* what) {
  std::string text(what);
  return text.substr(0, text.find('\n'));
}

struct LayerClass {
  LayerKind kind;
  const char* class_name;
  int64_t weight_dim;
};

/// The layer class of a module type such as
/// "__torch__.torch.nn.modules.linear.___torch_mangle_3.Linear" (scripting and tracing insert
/// the mangle component when two instances of a class differ in their attributes). Only
/// torch.nn's own classes: a user's class of the same name may compute something else.
std::optional<LayerClass> layer_class(const std::string& qualified_type) {
  std::string type;
  size_t start = 0;
  while (start <= qualified_type.size()) {
    size_t end = qualified_type.find('.', start);
    if (end == std::string::npos) end = qualified_type.size();
    const std::string part = qualified_type.substr(start, end - start);
    if (part.rfind("___torch_mangle_", 0) != 0) type += (type.empty() ? "" : ".") + part;
    start = end + 1;
  }
  // nn.MultiheadAttention's out_proj is a NonDynamicallyQuantizableLinear, an nn.Linear.
  if (type == "__torch__.torch.nn.modules.linear.Linear" ||
      type == "__torch__.torch.nn.modules.linear.NonDynamicallyQuantizableLinear")
    return LayerClass{LayerKind::Linear, "Linear", 2};
  if (type == "__torch__.torch.nn.modules.conv.Conv1d")
    return LayerClass{LayerKind::Conv, "Conv1d", 3};
  if (type == "__torch__.torch.nn.modules.conv.Conv2d")
    return LayerClass{LayerKind::Conv, "Conv2d", 4};
  return std::nullopt;
}

/// The first tensor in a forward's result (a tensor, or a tuple, list or dict holding one).
at::Tensor first_tensor(const c10::IValue& value) {
  if (value.isTensor()) return value.toTensor();
  std::vector<c10::IValue> items;
  if (value.isTuple()) {
    for (const auto& item : value.toTupleRef().elements()) items.push_back(item);
  } else if (value.isList()) {
    for (const auto& item : value.toListRef()) items.push_back(item);
  } else if (value.isGenericDict()) {
    for (const auto& entry : value.toGenericDict()) items.push_back(entry.value());
  }
  for (const auto& item : items) {
    at::Tensor tensor = first_tensor(item);
    if (tensor.defined()) return tensor;
  }
  return {};
}

/// True when `a` and `b` are the same elements of the same storage (a parameter and the
/// detached alias a layer holds).
bool is_same_view(const at::Tensor& a, const at::Tensor& b) {
  return a.defined() && b.defined() && a.is_alias_of(b) && a.sizes() == b.sizes() &&
         a.strides() == b.strides() && a.storage_offset() == b.storage_offset() &&
         a.dtype() == b.dtype();
}

/// Makes the module's parameter `attr` hold `tensor` (a layer's weight or bias, possibly a new
/// tensor an algorithm assigned), and the layer alias the module's tensor again.
void sync_attribute(c10::ivalue::Object& module, const std::string& layer, const char* attr,
                    at::Tensor& tensor) {
  const c10::IValue current_value = module.getAttr(attr);
  STUNT_CHECK_AS(NotImplementedError, current_value.isTensor(), "layer ", layer,
                 ": the TorchScript module has no ", attr,
                 " tensor, and one cannot be added to a scripted module");
  at::Tensor current = current_value.toTensor();
  if (is_same_view(current, tensor)) return;
  if (current.sizes() == tensor.sizes() && current.dtype() == tensor.dtype() &&
      current.device() == tensor.device()) {
    current.copy_(tensor);
    tensor = current.detach();
    return;
  }
  at::Tensor replacement = tensor.detach();
  if (current.requires_grad() && replacement.is_floating_point()) replacement.requires_grad_(true);
  module.setAttr(attr, replacement);
  tensor = replacement.detach();
}

}  // namespace

ScriptModel::ScriptModel() : impl_(std::make_unique<Impl>()) {}
ScriptModel::~ScriptModel() = default;

std::string ScriptModel::architecture() const { return "torchscript"; }

const fs::path& ScriptModel::source() const { return impl_->source; }

std::unique_ptr<ScriptModel> load_script_model(const fs::path& model_pt) {
  STUNT_CHECK_AS(IoError, fs::is_regular_file(model_pt), model_pt.string(),
                 ": no such file; expected a TorchScript archive (torch.jit.save of a scripted "
                 "or traced module)");
  std::unique_ptr<ScriptModel> model(new ScriptModel());
  ScriptModel::Impl& impl = *model->impl_;
  impl.source = model_pt;
  try {
    impl.module = torch::jit::load(model_pt.string(), c10::Device(c10::kCPU));
  } catch (const std::exception& e) {
    std::string cause = first_line(e.what());
    // torch.save archives are zip files too, without the TorchScript records.
    if (cause.find("constants.pkl") != std::string::npos)
      cause = "a PyTorch zip archive without TorchScript code, e.g. a torch.save of a state dict";
    throw FormatError(str(model_pt.string(), ": not a TorchScript archive that LibTorch can load (",
                          cause, "); expected torch.jit.save of a scripted or traced module"));
  }
  STUNT_CHECK_AS(FormatError, impl.module.find_method("forward").has_value(), model_pt.string(),
                 ": the TorchScript module has no forward method");
  // Calibration and evaluation run in inference mode (BatchNorm running statistics, no
  // dropout); the archive is saved so.
  impl.module.eval();

  std::set<const c10::ivalue::Object*> seen;
  for (const auto& sub : impl.module.named_modules()) {
    const auto object = sub.value._ivalue();
    // A module registered under two names is one layer, named as Python's named_modules() does.
    if (!seen.insert(object.get()).second) continue;
    const auto type = sub.value.type()->name();
    if (!type) continue;
    const auto found = layer_class(type->qualifiedName());
    if (!found || !object->type()->hasAttribute("weight")) continue;
    const c10::IValue weight = object->getAttr("weight");
    if (!weight.isTensor() || weight.toTensor().dim() != found->weight_dim) continue;
    Layer layer;
    layer.name = sub.name;
    layer.kind = found->kind;
    layer.class_name = found->class_name;
    // Detached aliases of the parameters: algorithms edit them in place without autograd
    // getting in the way, and the module sees every edit.
    layer.weight = weight.toTensor().detach();
    if (object->type()->hasAttribute("bias") && object->getAttr("bias").isTensor())
      layer.bias = object->getAttr("bias").toTensor().detach();
    // An arbitrary graph is one block.
    layer.block = 0;
    Layer& added = model->add_layer(std::move(layer));
    impl.refs.push_back({&added, object});
    impl.runtime.layers[added.name] = &added;
  }
  // nn.MultiheadAttention's in_proj_weight is a parameter of the attention module, not a
  // Linear submodule, and is not listed: its projection (aten::linear on slices of it inside
  // F.multi_head_attention_forward) has no layer of its own to capture or swap.

  ScriptModel* self = model.get();
  impl.runtime.deliver = [self](const Layer& layer, const at::Tensor& input) {
    self->deliver_capture(layer, input);
  };
  try {
    impl.forward = detail::instrument_forward(impl.module, impl.refs);
  } catch (const c10::Error& e) {
    throw NotImplementedError(str(model_pt.string(), ": cannot instrument the forward graph (",
                                  first_line(e.what()), ")"));
  }
  return model;
}

BlockState ScriptModel::embed(const Batch& batch) {
  std::vector<at::Tensor> inputs = batch.inputs;
  if (inputs.empty()) {
    STUNT_CHECK(batch.input_ids.defined(), source().string(),
                ": the batch has no inputs; a TorchScript model takes Batch::inputs, the "
                "positional arguments of its forward");
    inputs.push_back(batch.input_ids);
    if (batch.attention_mask.defined()) inputs.push_back(batch.attention_mask);
  }
  BlockState state;
  for (size_t i = 0; i < inputs.size(); ++i) {
    STUNT_CHECK(inputs[i].defined(), source().string(), ": input ", i, " is undefined");
    state.context["input" + std::to_string(i)] = inputs[i];
  }
  return state;
}

void ScriptModel::run_block(int index, BlockState& state) {
  STUNT_CHECK(index == 0, source().string(), ": a TorchScript model is one block; block ", index,
              " does not exist");
  c10::NoGradGuard no_grad;
  sync_parameters();
  std::vector<c10::IValue> stack{impl_->module._ivalue()};
  for (size_t i = 0; state.context.count("input" + std::to_string(i)); ++i)
    stack.emplace_back(state.context.at("input" + std::to_string(i)));
  c10::IValue result;
  {
    detail::ActiveScriptRuntime active(impl_->runtime);
    try {
      result = (*impl_->forward.function)(std::move(stack));
    } catch (const std::exception& e) {
      // An error raised by a capture, a replacement forward or stunt::unsupported, with its
      // own class; otherwise the model's own failure (wrong inputs, a failed assert).
      if (impl_->runtime.error) std::rethrow_exception(impl_->runtime.error);
      throw ValueError(
          str(source().string(), ": the TorchScript forward failed: ", first_line(e.what())));
    }
  }
  state.hidden = first_tensor(result);
  STUNT_CHECK_AS(NotImplementedError, state.hidden.defined(), source().string(),
                 ": the forward returned ", result.tagKind(),
                 " with no tensor; Stunt takes the first tensor of the output");
}

Output ScriptModel::head(BlockState& state) {
  Output out;
  out.logits = state.hidden;
  return out;
}

void ScriptModel::sync_parameters() const {
  c10::NoGradGuard no_grad;
  for (const detail::ScriptLayerRef& ref : impl_->refs) {
    sync_attribute(*ref.module, ref.layer->name, "weight", ref.layer->weight);
    if (ref.layer->bias.defined())
      sync_attribute(*ref.module, ref.layer->name, "bias", ref.layer->bias);
  }
}

std::vector<std::pair<std::string, at::Tensor>> ScriptModel::state_dict() const {
  sync_parameters();
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const auto& p : impl_->module.named_parameters(/*recurse=*/true))
    out.emplace_back(p.name, p.value.detach());
  for (const auto& b : impl_->module.named_buffers(/*recurse=*/true))
    out.emplace_back(b.name, b.value);
  return out;
}

void ScriptModel::save(const fs::path& folder) const {
  fs::create_directories(folder);
  save_archive(folder / "model.pt");
}

void ScriptModel::save_archive(const fs::path& file) const {
  sync_parameters();
  AtomicFile out(file);
  try {
    torch::jit::ExportModule(impl_->module, [&out](const void* data, size_t size) {
      out.write(data, size);
      return size;
    });
  } catch (const c10::Error& e) {
    throw IoError(
        str(file.string(), ": cannot write the TorchScript archive (", first_line(e.what()), ")"));
  }
  out.commit();
}

void ScriptModel::set_layer_buffer(const std::string& layer, const std::string& name,
                                   const at::Tensor& value) {
  const detail::ScriptLayerRef* ref = nullptr;
  for (const detail::ScriptLayerRef& r : impl_->refs) {
    if (r.layer->name == layer) ref = &r;
  }
  STUNT_CHECK(ref != nullptr, source().string(), ": the TorchScript module has no layer '", layer,
              "'");
  torch::jit::Module module(ref->module);
  const c10::ClassTypePtr type = module.type();
  try {
    module.register_buffer(name, value.detach());
  } catch (const c10::Error& e) {
    throw ValueError(str(source().string(), ": cannot add buffer ", name, " to layer ", layer, " (",
                         first_line(e.what()), ")"));
  }
  const size_t slot = type->getAttributeSlot(name);
  for (const auto& sub : impl_->module.named_modules()) {
    const auto object = sub.value._ivalue();
    if (object->type() == type && object->slots().size() <= slot) {
      object->setSlot(slot, at::empty({0}, value.options()));
    }
  }
}

}  // namespace stunt::model
