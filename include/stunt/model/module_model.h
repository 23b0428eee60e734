#pragma once
/// A user's own torch::nn::Module as a Model (DESIGN.md, "The model interface": ModuleModel), so
/// that recipes apply to models written in C++ training code rather than loaded from a Hugging
/// Face folder.
///
/// Layers are found by module type and named by their qualified names (named_modules(): "fc1",
/// "features.0"): stunt::nn::Linear and stunt::nn::Conv2d, the drop-ins below, and plain
/// torch::nn::Linear, torch::nn::Conv2d and torch::nn::Embedding. Recipes target them by class
/// ("Linear", "Conv2d", "Embedding"), exact name or "re:" pattern, as with any model.
///
/// A plain torch module runs its own forward, out of Stunt's reach: methods that work on the
/// weights alone (magnitude and gradual pruning, RTN) apply to it, while fake quantization and
/// input capture need the drop-in, whose forward Stunt runs (Layer::reachable).

#include <torch/nn/module.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "stunt/model/model.h"

namespace stunt::model {
class ModuleModel;
}

namespace stunt::nn {

/// torch::nn::Linear whose forward a ModuleModel can reach: the same constructors, options,
/// parameters ("weight", "bias") and state-dict names, so it replaces torch::nn::Linear in a
/// model definition and in saved files alike. Outside a ModuleModel it computes what
/// torch::nn::Linear computes.
class LinearImpl : public torch::nn::LinearImpl {
 public:
  using torch::nn::LinearImpl::LinearImpl;
  at::Tensor forward(const at::Tensor& input);

 private:
  friend class model::ModuleModel;
  model::ModuleModel* owner_ = nullptr;
  const model::Layer* layer_ = nullptr;
};
TORCH_MODULE(Linear);

/// torch::nn::Conv2d whose forward a ModuleModel can reach (see LinearImpl).
class Conv2dImpl : public torch::nn::Conv2dImpl {
 public:
  using torch::nn::Conv2dImpl::Conv2dImpl;
  at::Tensor forward(const at::Tensor& input);

 private:
  friend class model::ModuleModel;
  model::ModuleModel* owner_ = nullptr;
  const model::Layer* layer_ = nullptr;
};
TORCH_MODULE(Conv2d);

}  // namespace stunt::nn

namespace stunt::model {

class ModuleModel final : public Model {
 public:
  /// Runs the user's module on a batch, for what Stunt runs itself (calibration of one-shot
  /// methods, evaluation); returns the module's output, which Output::logits holds.
  using Forward = std::function<at::Tensor(const Batch& batch)>;

  /// Wraps `module` (shared: the user's code keeps training it). The layers' tensors are the
  /// module's parameters, not copies; every other parameter and buffer is a non-layer tensor
  /// under its qualified name. `forward` may be empty when Stunt never runs the module itself
  /// (training-time methods in the user's own loop). ValueError when the module holds no layer
  /// Stunt knows.
  explicit ModuleModel(std::shared_ptr<torch::nn::Module> module, Forward forward = {});
  template <typename Impl>
  explicit ModuleModel(const torch::nn::ModuleHolder<Impl>& module, Forward forward = {})
      : ModuleModel(module.ptr(), std::move(forward)) {}
  /// Detaches the drop-ins, which then compute as torch's own layers again.
  ~ModuleModel() override;

  std::string architecture() const override { return "module"; }
  int num_blocks() const override { return 0; }
  BlockState embed(const Batch& batch) override;
  void run_block(int index, BlockState& state) override;
  Output head(BlockState& state) override;

  /// Writes model.safetensors (the state dict, as the module names it) and a config.json that
  /// says it came from a user's module.
  void save(const std::filesystem::path& folder) const override;

  torch::nn::Module& module() const { return *module_; }

  /// Copies into the module's parameters any layer tensor a method replaced rather than changed
  /// in place, so that the user's code sees the result.
  void write_back();

  /// For the drop-ins: hands `input` to the active capture, then runs the layer's replacement
  /// forward, or `plain` when it has none.
  at::Tensor call_drop_in(const Layer& layer, const at::Tensor& input,
                          const std::function<at::Tensor(const at::Tensor&)>& plain) const;

 private:
  struct Binding {
    std::string name;
    /// The module's own parameters, which write_back() refreshes.
    at::Tensor weight;
    at::Tensor bias;
  };
  std::shared_ptr<torch::nn::Module> module_;
  Forward forward_;
  std::vector<nn::LinearImpl*> linear_drop_ins_;
  std::vector<nn::Conv2dImpl*> conv_drop_ins_;
  std::vector<Binding> bindings_;
};

}  // namespace stunt::model
