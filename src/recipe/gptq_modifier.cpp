// GPTQModifier: second-order weight quantization, one block at a time.
#include <map>

#include "detail/quantization_mixin.h"
#include "detail/quantization_modifiers.h"
#include "stunt/core/error.h"
#include "stunt/core/logging.h"
#include "stunt/quant/gptq.h"

namespace stunt::recipe::detail {
namespace {

class GptqModifier final : public Modifier {
 public:
  explicit GptqModifier(ModifierSpec spec) : Modifier(std::move(spec)), mixin_(this->spec()) {
    const ArgReader a = this->spec().reader();
    if (a.contains("block_size")) options_.block_size = a["block_size"].get<int64_t>();
    if (a.contains("dampening_frac") && !a["dampening_frac"].is_null()) {
      options_.dampening_frac = a["dampening_frac"].get<double>();
    }
    if (a.contains("hessian_dtype") && a["hessian_dtype"].get<std::string>() == "float64") {
      hessian_dtype_ = at::kDouble;
    }
    // llm-compressor's default is 'static' (activation order); null or false turns it off.
    std::optional<quant::ActOrder> actorder = quant::ActOrder::Static;
    bool explicit_actorder = false;
    if (a.contains("actorder")) {
      explicit_actorder = true;
      try {
        actorder = quant::QuantArgs::from_json(nlohmann::ordered_json{{"actorder", a["actorder"]}})
                       .actorder;
      } catch (const ValueError& e) {
        throw RecipeError(str(this->spec().where(), ".actorder: ", e.what()));
      }
    }
    for (quant::QuantScheme& scheme : mixin_.schemes()) {
      if (!scheme.weights) continue;
      if (scheme.weights->actorder && explicit_actorder && scheme.weights->actorder != actorder) {
        throw RecipeError(str(this->spec().where(),
                              ": actorder is given both here and in the "
                              "scheme's weights, and they differ; remove one"));
      }
      if (!scheme.weights->actorder) scheme.weights->actorder = actorder;
    }
  }

  bool needs_calibration() const override { return true; }
  /// The Hessians are sums over samples; calibrated static input scales are not.
  bool batch_invariant() const override { return !mixin_.has_static_inputs(); }

 protected:
  void on_initialize(State& state) override { mixin_.resolve(state); }

 public:
  std::vector<model::Layer*> calibration_layers(State& state, int block) override {
    std::vector<model::Layer*> layers = mixin_.begin_input_observers(state, block);
    for (model::Layer* layer : mixin_.block_layers(block)) {
      if (!mixin_.scheme_of(state, *layer).weights) continue;
      hessians_.emplace(layer->name,
                        quant::HessianAccumulator(layer->in_features(), hessian_dtype_));
      if (std::find(layers.begin(), layers.end(), layer) == layers.end()) layers.push_back(layer);
    }
    return layers;
  }

  void observe(State&, const model::Layer& layer, const at::Tensor& input) override {
    mixin_.observe_input(layer, input);
    auto it = hessians_.find(layer.name);
    if (it == hessians_.end()) return;
    // q, k and v (gate and up) read one tensor: its product is computed once per forward.
    if (!(shared_input_.defined() && input.is_same(shared_input_) &&
          input._version() == shared_version_ && shared_product_.scalar_type() == hessian_dtype_)) {
      shared_input_ = input;
      shared_version_ = input._version();
      shared_product_ = quant::HessianAccumulator::input_product(input, hessian_dtype_);
    }
    it->second.add_product(shared_product_, input);
  }

  void apply_block(State& state, int block) override {
    shared_input_ = at::Tensor();
    shared_product_ = at::Tensor();
    mixin_.finish_input_observers(state, block);
    for (model::Layer* layer : mixin_.block_layers(block)) {
      auto it = hessians_.find(layer->name);
      if (it == hessians_.end()) continue;
      const quant::QuantScheme& scheme = mixin_.scheme_of(state, *layer);
      std::string group;
      for (const auto& [l, g] : mixin_.assignments()) {
        if (l == layer) group = g;
      }
      if (it->second.samples() == 0) {
        log::warn(spec().where(), ": ", layer->name,
                  " never ran during calibration; it is "
                  "quantized by round to nearest");
        QuantizationMixin::quantize_weight_rtn(state, *layer, scheme, group);
      } else {
        quant::GptqOptions options = options_;
        options.layer = layer->name;
        options.factor_cache = &factor_cache_;
        // A mask from pruning earlier in the recipe survives: its weights quantize to zero.
        if (auto pruned = state.pruned.find(layer->name); pruned != state.pruned.end()) {
          options.pruned = pruned->second;
        }
        quant::GptqResult result =
            quant::gptq_quantize(layer->weight, it->second.hessian(), *scheme.weights, options);
        quant::LayerQuantization& record = state.quantization.layer(layer->name);
        record.group = group;
        record.weight = in_storage_precision(state, *layer, result.qparams);
        if (!record.weight.scale.equal(result.qparams.scale)) {
          // Scales moved when rounded to the checkpoint's dtype: requantize with the stored ones.
          result.weight =
              quant::fake_quantize_weight(result.weight, record.weight, *scheme.weights);
        }
        layer->weight = result.weight;
        log::debug("GPTQ ", layer->name, ": loss ", result.loss);
      }
      hessians_.erase(it);
    }
    factor_cache_.clear();
  }

 private:
  QuantizationMixin mixin_;
  quant::GptqOptions options_;
  /// GPTQ computes in the Hessian's dtype (float32 as llm-compressor, or float64).
  c10::ScalarType hessian_dtype_ = at::kFloat;
  /// The last input observed and its product xᵀx, reused by the next layer that reads it.
  at::Tensor shared_input_;
  uint32_t shared_version_ = 0;
  at::Tensor shared_product_;
  std::map<std::string, quant::HessianAccumulator> hessians_;
  kernels::InverseFactorCache factor_cache_;
};

}  // namespace

std::unique_ptr<Modifier> make_gptq_modifier(const ModifierSpec& spec) {
  return std::make_unique<GptqModifier>(spec);
}

}  // namespace stunt::recipe::detail
