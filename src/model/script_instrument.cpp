// Instrumentation of TorchScript forward graphs for ScriptModel (FORMATS.md, "LibTorch"):
// an inlined copy of the forward in which each call of a layer,
//
//   %y = aten::linear(%x, %w, %b)
//
// becomes
//
//   %x1 = stunt::observe(%x, "fc1")                 # hands %x to the active capture
//   %s = stunt::swapped("fc1")                      # is a replacement forward set?
//   %y = prim::If(%s)
//     block0(): %y1 = stunt::swap(%x1, "fc1") -> (%y1)   # the replacement's output
//     block1(): %y2 = aten::linear(%x1, %w, %b) -> (%y2)
//
// The stunt:: operators reach the model through a thread-local runtime that ScriptModel sets
// while it runs the graph. They are registered with CONSERVATIVE alias analysis, which marks
// them as having side effects, so dead-code elimination, constant propagation and common
// subexpression elimination leave them alone.
#include <ATen/ATen.h>
#include <torch/csrc/jit/ir/ir.h>
#include <torch/csrc/jit/passes/inliner.h>
#include <torch/library.h>

#include <optional>
#include <set>
#include <unordered_map>

#include "detail/script_instrument.h"
#include "stunt/core/error.h"

namespace stunt::model::detail {
namespace {

namespace jit = torch::jit;

thread_local const ScriptRuntime* t_runtime = nullptr;

/// The layer `name` of the active runtime; null when no ScriptModel runs on this thread (the
/// graph was run by someone else), in which case the operators are plain identities.
Layer* active_layer(const std::string& name) {
  if (t_runtime == nullptr) return nullptr;
  auto it = t_runtime->layers.find(name);
  return it == t_runtime->layers.end() ? nullptr : it->second;
}

// The interpreter turns exceptions thrown inside operators into std::runtime_error with a
// TorchScript traceback, losing their class. The operators keep the original in the runtime;
// ScriptModel rethrows it after the run (see run_with_runtime).
template <typename F>
auto keep_error(F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (...) {
    if (t_runtime != nullptr && !t_runtime->error) t_runtime->error = std::current_exception();
    throw;
  }
}

at::Tensor observe(const at::Tensor& x, std::string name) {
  return keep_error([&] {
    if (Layer* layer = active_layer(name)) t_runtime->deliver(*layer, x);
    return x;
  });
}

bool swapped(std::string name) {
  Layer* layer = active_layer(name);
  return layer != nullptr && static_cast<bool>(layer->forward);
}

at::Tensor swap(const at::Tensor& x, std::string name) {
  return keep_error([&] {
    Layer* layer = active_layer(name);
    STUNT_ASSERT(layer != nullptr && layer->forward, "stunt::swap called for layer ", name,
                 " without a replacement forward");
    return layer->forward(x, *layer);
  });
}

void unsupported(std::string name, std::string op) {
  keep_error([&] {
    Layer* layer = active_layer(name);
    if (layer == nullptr || (!layer->capture && !layer->forward)) return;
    throw NotImplementedError(str(
        "layer ", name, ": its weight is used by ", op,
        ", which instrumentation cannot handle, so its input cannot be captured and its forward "
        "cannot be replaced in this TorchScript model. Only aten::linear, aten::conv1d, "
        "aten::conv2d and aten::_convolution calls of a layer's weight are instrumented; call "
        "the layer as a module in the model's code (self.fc(x), not its weight), or add the "
        "layer to 'ignore'"));
  });
}

constexpr const char* kObserve = "stunt::observe";
constexpr const char* kSwapped = "stunt::swapped";
constexpr const char* kSwap = "stunt::swap";
constexpr const char* kUnsupported = "stunt::unsupported";

/// Uses of a weight that only read its metadata and never its values.
bool is_metadata_query(const jit::Node* node) {
  static const std::set<std::string> kOps = {"aten::size",
                                             "aten::dim",
                                             "aten::numel",
                                             "aten::len",
                                             "aten::__is__",
                                             "aten::__isnot__",
                                             "aten::is_floating_point",
                                             "aten::is_complex",
                                             "prim::dtype",
                                             "prim::device",
                                             "prim::layout",
                                             "prim::is_cuda",
                                             "prim::is_cpu",
                                             "prim::is_xpu",
                                             "prim::is_mps",
                                             "prim::is_meta",
                                             "prim::is_nested",
                                             "prim::is_quantized",
                                             "prim::is_sparse",
                                             "prim::is_mkldnn",
                                             "prim::is_vulkan",
                                             "prim::is_ipu",
                                             "prim::shape",
                                             "aten::get_device",
                                             "prim::requires_grad",
                                             "prim::is_sparse_csr",
                                             "aten::is_nonzero"};
  return kOps.count(node->kind().toQualString()) != 0;
}

/// A use of a layer's weight as the weight of the computation the layer performs.
bool is_layer_call(const Layer& layer, const jit::Use& use) {
  if (use.offset != 1) return false;
  const std::string op = use.user->kind().toQualString();
  if (layer.kind == LayerKind::Linear) return op == "aten::linear";
  if (layer.kind == LayerKind::Conv)
    return op == "aten::conv1d" || op == "aten::conv2d" || op == "aten::_convolution";
  return false;
}

void collect_nodes(jit::Block* block, std::vector<jit::Node*>& out) {
  for (jit::Node* node : block->nodes()) {
    out.push_back(node);
    for (jit::Block* inner : node->blocks()) collect_nodes(inner, out);
  }
}

/// Rewrites one call site as the header comment shows.
void instrument_call(jit::Graph& graph, jit::Node* call, const std::string& name) {
  jit::WithInsertPoint before(call);
  jit::Value* name_value = graph.insertConstant(name);
  jit::Value* observed =
      graph.insert(c10::Symbol::fromQualString(kObserve), {call->input(0), name_value});
  call->replaceInput(0, observed);
  jit::Value* is_swapped = graph.insert(c10::Symbol::fromQualString(kSwapped), {name_value});
  jit::Node* branch = graph.create(c10::prim::If, {is_swapped}, 1);
  branch->insertBefore(call);
  branch->output()->setType(c10::TensorType::get());
  jit::Block* swap_block = branch->addBlock();
  jit::Block* plain_block = branch->addBlock();
  call->output()->replaceAllUsesWith(branch->output());
  {
    jit::WithInsertPoint inside(swap_block);
    swap_block->registerOutput(
        graph.insert(c10::Symbol::fromQualString(kSwap), {observed, name_value}));
  }
  call->moveBefore(plain_block->return_node());
  plain_block->registerOutput(call->output());
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(stunt, m) {
  m.def(torch::schema("stunt::observe(Tensor x, str name) -> Tensor",
                      c10::AliasAnalysisKind::CONSERVATIVE),
        &observe);
  m.def(torch::schema("stunt::swapped(str name) -> bool", c10::AliasAnalysisKind::CONSERVATIVE),
        &swapped);
  m.def(torch::schema("stunt::swap(Tensor x, str name) -> Tensor",
                      c10::AliasAnalysisKind::CONSERVATIVE),
        &swap);
  m.def(torch::schema("stunt::unsupported(str name, str op) -> ()",
                      c10::AliasAnalysisKind::CONSERVATIVE),
        &unsupported);
}

ActiveScriptRuntime::ActiveScriptRuntime(const ScriptRuntime& runtime) : previous_(t_runtime) {
  runtime.error = nullptr;
  t_runtime = &runtime;
}

ActiveScriptRuntime::~ActiveScriptRuntime() { t_runtime = previous_; }

InstrumentedForward instrument_forward(const torch::jit::Module& module,
                                       const std::vector<ScriptLayerRef>& layers) {
  const jit::Method forward = module.get_method("forward");
  std::shared_ptr<jit::Graph> graph = forward.graph()->copy();
  // Each call of a submodule's method gets its own copy of the method body, so each layer call
  // is one node whose weight comes from a prim::GetAttr chain starting at `self`.
  jit::Inline(*graph);

  std::unordered_map<const c10::ivalue::Object*, Layer*> layer_of;
  for (const ScriptLayerRef& ref : layers) layer_of[ref.module.get()] = ref.layer;

  // The module object each value stands for, when it is a chain of GetAttr from `self`.
  std::unordered_map<const jit::Value*, c10::intrusive_ptr<c10::ivalue::Object>> objects;
  objects[graph->inputs().at(0)] = module._ivalue();
  auto object_of = [&](const jit::Value* value) -> c10::intrusive_ptr<c10::ivalue::Object> {
    auto it = objects.find(value);
    return it == objects.end() ? nullptr : it->second;
  };

  std::vector<jit::Node*> nodes;
  collect_nodes(graph->block(), nodes);

  struct WeightUse {
    jit::Node* node;
    Layer* layer;
  };
  std::vector<WeightUse> calls, unsupported_uses, grad_queries;
  std::vector<jit::Node*> grad_mode_queries;
  for (jit::Node* node : nodes) {
    if (node->kind() == c10::Symbol::fromQualString("aten::is_grad_enabled"))
      grad_mode_queries.push_back(node);
    if (node->kind() != c10::prim::GetAttr) continue;
    auto owner = object_of(node->input(0));
    if (!owner) continue;
    const std::string attr = node->s(c10::attr::name);
    const c10::ClassTypePtr type = owner->type();
    if (!type->hasAttribute(attr)) continue;
    const c10::IValue value = owner->getAttr(attr);
    if (value.isObject()) {
      objects[node->output()] = value.toObject();
      continue;
    }
    auto layer = layer_of.find(owner.get());
    if (attr != "weight" || layer == layer_of.end()) continue;
    for (const jit::Use& use : node->output()->uses()) {
      if (is_layer_call(*layer->second, use)) {
        calls.push_back({use.user, layer->second});
      } else if (use.user->kind() == c10::prim::requires_grad) {
        grad_queries.push_back({use.user, layer->second});
      } else if (!is_metadata_query(use.user)) {
        unsupported_uses.push_back({use.user, layer->second});
      }
    }
  }

  InstrumentedForward out;
  for (const WeightUse& use : unsupported_uses) {
    jit::WithInsertPoint before(use.node);
    graph->insert(c10::Symbol::fromQualString(kUnsupported),
                  {graph->insertConstant(use.layer->name),
                   graph->insertConstant(std::string(use.node->kind().toQualString()))});
  }
  // PyTorch's fused inference paths (TransformerEncoderLayer, MultiheadAttention) take the
  // layers' weights past their modules; they are skipped when autograd is on and a weight
  // requires grad. The instrumented graph answers both questions with yes, so the per-layer
  // path runs (and is instrumented), while the run itself stays without autograd.
  auto replace_with_true = [&](jit::Node* node) {
    jit::WithInsertPoint before(node);
    node->output()->replaceAllUsesWith(graph->insertConstant(true));
    node->destroy();
  };
  for (jit::Node* node : grad_mode_queries) replace_with_true(node);
  for (const WeightUse& use : grad_queries) replace_with_true(use.node);
  for (const WeightUse& call : calls) {
    instrument_call(*graph, call.node, call.layer->name);
    ++out.call_sites[call.layer->name];
  }
  graph->lint();

  out.graph = graph;
  out.function = std::make_unique<jit::GraphFunction>(
      c10::QualifiedName("__torch__.stunt.instrumented_forward"), graph, nullptr);
  // The original schema keeps the argument names and defaults of forward.
  out.function->setSchema(forward.function().getSchema());
  return out;
}

}  // namespace stunt::model::detail
