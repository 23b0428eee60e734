// QuantizationModifier: round-to-nearest weights, and static input scales calibrated on data.
#include "detail/quantization_mixin.h"
#include "detail/quantization_modifiers.h"

namespace stunt::recipe::detail {
namespace {

class QuantizationModifier final : public Modifier {
 public:
  explicit QuantizationModifier(ModifierSpec spec)
      : Modifier(std::move(spec)), mixin_(this->spec()) {
    const ArgReader a = this->spec().reader();
    for (const char* key : {"learnable_scales", "disable_quantization_observer_epoch"}) {
      STUNT_CHECK_AS(RecipeError, !a.has(key), this->spec().where(), ".", key,
                     ": shapes quantization-aware training, which runs in a train stage; put the "
                     "modifier in a stage with run_type: train (and give --dataset), or remove ",
                     key);
    }
  }

  bool needs_calibration() const override { return mixin_.has_static_inputs(); }

 protected:
  void on_initialize(State& state) override { mixin_.resolve(state); }

 public:
  std::vector<model::Layer*> calibration_layers(State& state, int block) override {
    return mixin_.begin_input_observers(state, block);
  }
  void observe(State&, const model::Layer& layer, const at::Tensor& input) override {
    mixin_.observe_input(layer, input);
  }
  void apply_block(State& state, int block) override {
    mixin_.finish_input_observers(state, block);
  }
  /// Weights are quantized after the pass: calibration runs on the unquantized model, as in
  /// llm-compressor.
  void finish(State& state) override {
    for (const auto& [layer, group] : mixin_.assignments()) {
      QuantizationMixin::quantize_weight_rtn(state, *layer, state.quantization.scheme(group),
                                             group);
    }
  }

 private:
  QuantizationMixin mixin_;
};

}  // namespace

std::unique_ptr<Modifier> make_quantization_modifier(const ModifierSpec& spec) {
  return std::make_unique<QuantizationModifier>(spec);
}

}  // namespace stunt::recipe::detail
