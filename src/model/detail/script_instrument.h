#pragma once
// Instrumentation of a TorchScript forward graph (ScriptModel): an inlined copy of the module's
// forward in which every call of a listed layer goes through the registered stunt:: operators,
// so that its input can be captured and its computation replaced.

#include <ATen/core/Tensor.h>
#include <torch/csrc/jit/api/function_impl.h>
#include <torch/csrc/jit/api/module.h>

#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "stunt/model/model.h"

namespace stunt::model::detail {

/// A layer and the submodule object that holds its parameters.
struct ScriptLayerRef {
  Layer* layer = nullptr;
  c10::intrusive_ptr<c10::ivalue::Object> module;
};

/// What the stunt:: operators reach while an instrumented forward runs on this thread.
struct ScriptRuntime {
  std::map<std::string, Layer*> layers;
  /// Hands a layer's input to the model's active capture (Model::deliver_capture).
  std::function<void(const Layer&, const at::Tensor&)> deliver;
  /// The first exception an operator threw during the run, kept with its class (the
  /// interpreter rethrows it as a std::runtime_error).
  mutable std::exception_ptr error;
};

/// The instrumented forward: `function` runs it with the module object as its first input.
struct InstrumentedForward {
  std::shared_ptr<torch::jit::Graph> graph;
  std::unique_ptr<torch::jit::GraphFunction> function;
  /// How many call sites each layer has in the graph (a layer called twice has 2).
  std::map<std::string, int> call_sites;
};

/// Builds the instrumented forward of `module` for `layers`. Weight uses other than the layer
/// calls it knows (aten::linear, aten::conv1d, aten::conv2d, aten::_convolution) and metadata
/// queries get a stunt::unsupported check that throws NotImplementedError, naming the op and
/// the layer, when that code runs while the layer is captured or swapped.
InstrumentedForward instrument_forward(const torch::jit::Module& module,
                                       const std::vector<ScriptLayerRef>& layers);

/// While alive, the stunt:: operators called on this thread use `runtime`.
class ActiveScriptRuntime {
 public:
  explicit ActiveScriptRuntime(const ScriptRuntime& runtime);
  ~ActiveScriptRuntime();
  ActiveScriptRuntime(const ActiveScriptRuntime&) = delete;
  ActiveScriptRuntime& operator=(const ActiveScriptRuntime&) = delete;

 private:
  const ScriptRuntime* previous_;
};

}  // namespace stunt::model::detail
