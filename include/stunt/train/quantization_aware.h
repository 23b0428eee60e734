#pragma once
/// Quantization-aware training: the chosen linear layers compute with fake-quantized weights
/// (and inputs) from `start_epoch` on, so that the model learns to work on the quantization grid
/// it will be saved on. Scales come from the scheme's observers until `freeze_epoch` (SparseML's
/// disable_quantization_observer_epoch), or are learned (LSQ, quant/fake_quant.h). finalize()
/// hands the trained scales to the QuantizationPlan that post-training quantization fills, so
/// the result is saved as the same compressed-tensors checkpoint.

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "stunt/model/model.h"
#include "stunt/quant/fake_quant.h"
#include "stunt/quant/observer.h"
#include "stunt/quant/quantization_plan.h"
#include "stunt/train/trainer.h"

namespace stunt::train {

struct QuantizationAwareOptions {
  /// Key of this method's state in checkpoints, and the `where` of its errors (recipe path).
  std::string name;
  /// What to simulate: weights and, optionally, input activations.
  quant::QuantScheme scheme;
  /// LearnedStepSize learns the weights' scales (as logarithms, so that each optimizer step
  /// changes a scale by a fraction) and the zero points of asymmetric schemes; StraightThrough
  /// takes them from observers. Static input scales are observed either way.
  quant::FakeQuantEstimator estimator = quant::FakeQuantEstimator::StraightThrough;
  /// Fake quantization starts at this epoch.
  double start_epoch = 0.0;
  /// Observers stop and scales freeze at this epoch (never when unset).
  std::optional<double> freeze_epoch;
};

class QuantizationAwareTraining : public TrainingCallbacks {
 public:
  /// ValueError naming options.name for a layer that is not linear, a group size that does not
  /// divide a layer, or a scheme that cannot be trained (quant/fake_quant.h).
  QuantizationAwareTraining(std::vector<model::Layer*> layers, QuantizationAwareOptions options);
  ~QuantizationAwareTraining() override;

  std::string name() const override { return options_.name; }
  std::vector<std::pair<std::string, at::Tensor>> parameters() override;
  void on_train_start(const StepInfo& info) override;
  void on_optimizer_post_step(const StepInfo& info) override;
  /// Input observers saw each rank's own examples: their statistics become the ranks' mean.
  void synchronize(ProcessGroup& group) override;
  void save_state(CallbackState& state) const override;
  void load_state(const CallbackState& state) override;

  bool enabled() const { return !swaps_.empty(); }
  bool frozen() const { return frozen_; }
  /// The weight scales the layer `index` computes with now.
  quant::QParams weight_qparams(size_t index) const;

  /// Records every layer's trained scales in `plan` under the scheme's config group and gives
  /// the layers back their plain forward: saving then quantizes the weights with exactly the
  /// scales training used.
  void finalize(quant::QuantizationPlan& plan);

 private:
  struct Layer;
  void enable();
  void freeze();
  at::Tensor forward(size_t index, const at::Tensor& input);

  QuantizationAwareOptions options_;
  std::vector<std::unique_ptr<Layer>> layers_;
  std::vector<std::unique_ptr<model::LayerSwap>> swaps_;
  bool frozen_ = false;
  /// enable() is due at on_train_start after a resume that had it on.
  bool restored_enabled_ = false;
};

}  // namespace stunt::train
