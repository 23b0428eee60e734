#pragma once
/// TorchScript models (`torch.jit.save` archives, scripted or traced) behind the Model
/// interface. The layers are the module's nn.Linear, nn.Conv1d and nn.Conv2d submodules; their
/// inputs are captured and their forwards swapped through an instrumented copy of the forward
/// graph (FORMATS.md, "LibTorch", and src/model/script_instrument.cpp).

#include <ATen/core/Tensor.h>

#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "stunt/model/model.h"

namespace stunt::model {

/// A TorchScript module loaded on the CPU. The whole forward is one block: an arbitrary graph
/// cannot be cut between layers, so `embed` keeps the inputs, `run_block(0)` runs the forward
/// and `head` returns its output.
class ScriptModel : public Model {
 public:
  ~ScriptModel() override;

  /// "torchscript".
  std::string architecture() const override;
  /// The archive the model was loaded from.
  const std::filesystem::path& source() const;

  int num_blocks() const override { return 1; }
  /// Keeps the batch's positional inputs (Batch::inputs, or input_ids [+ attention_mask]).
  BlockState embed(const Batch& batch) override;
  /// Runs the whole instrumented forward (index must be 0).
  void run_block(int index, BlockState& state) override;
  /// Output::logits is the forward's tensor output (the first tensor of a tuple or list).
  Output head(BlockState& state) override;

  /// Every parameter and buffer of the module under its qualified name, with the layers'
  /// current weights.
  std::vector<std::pair<std::string, at::Tensor>> state_dict() const override;
  /// Writes `folder`/model.pt (see save_archive).
  void save(const std::filesystem::path& folder) const override;
  /// Writes the module, with the layers' current weights and biases copied into its parameters,
  /// as a TorchScript archive at `file`, atomically.
  void save_archive(const std::filesystem::path& file) const;

  /// Registers `value` as buffer `name` of the layer's submodule, so that the archive save()
  /// writes carries it (quantization scales). A TorchScript class lists its attributes for every
  /// instance, so the other submodules of the layer's class get an empty tensor under that name.
  void set_layer_buffer(const std::string& layer, const std::string& name, const at::Tensor& value);

 private:
  struct Impl;
  friend std::unique_ptr<ScriptModel> load_script_model(const std::filesystem::path& model_pt);
  ScriptModel();
  /// Copies weights that algorithms replaced (layer.weight = new tensor) back into the module.
  void sync_parameters() const;
  std::unique_ptr<Impl> impl_;
};

/// Loads a TorchScript archive (`torch.jit.save` of a scripted or traced module) on the CPU.
/// Throws IoError when the file cannot be read and FormatError when it is not a TorchScript
/// archive, naming the file.
std::unique_ptr<ScriptModel> load_script_model(const std::filesystem::path& model_pt);

}  // namespace stunt::model
