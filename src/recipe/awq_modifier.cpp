// AWQModifier: activation-aware scaling (Lin et al. 2023). Per mapping (a smooth module and the
// layers it feeds), a grid search picks per-channel scales s that minimise the parent module's
// output error when the balance layers are quantized as W*s (and their inputs divided by s);
// the scales are then folded into the smooth module. The quantization itself is left to the
// quantization modifier that follows (or to the scheme given here, as older recipes do).
#include <ATen/ATen.h>

#include <cmath>
#include <optional>

#include "detail/quantization_mixin.h"
#include "detail/quantization_modifiers.h"
#include "stunt/core/error.h"
#include "stunt/core/logging.h"
#include "stunt/core/name_pattern.h"
#include "stunt/core/strings.h"
#include "stunt/model/architecture.h"
#include "stunt/quant/awq.h"
#include "stunt/quant/observer.h"

namespace stunt::recipe::detail {
namespace {

struct MappingSpec {
  std::string smooth;
  std::vector<std::string> balance;
};

/// The architecture's default mappings (stunt/model/architecture.h).
std::vector<MappingSpec> default_mappings(const std::string& architecture) {
  std::vector<MappingSpec> out;
  for (const model::SmoothingMapping& m : model::architecture_traits(architecture).awq_mappings) {
    out.push_back({m.smooth, m.balance});
  }
  return out;
}

std::string parent_of(const std::string& name) {
  const auto dot = name.rfind('.');
  return dot == std::string::npos ? "" : name.substr(0, dot);
}

class AwqModifier final : public Modifier {
 public:
  explicit AwqModifier(ModifierSpec spec) : Modifier(std::move(spec)) {
    const ArgReader a = this->spec().reader();
    if (a.contains("n_grid")) n_grid_ = a["n_grid"].get<int>();
    if (a.contains("duo_scaling")) {
      duo_ = a["duo_scaling"].is_boolean() ? (a["duo_scaling"].get<bool>() ? "true" : "false")
                                           : a["duo_scaling"].get<std::string>();
    }
    if (a.contains("mappings") && !a["mappings"].is_null()) {
      for (const auto& m : a["mappings"]) {
        MappingSpec mapping;
        mapping.smooth = m["smooth_layer"].get<std::string>();
        for (const auto& b : m["balance_layers"]) mapping.balance.push_back(b.get<std::string>());
        specs_.push_back(mapping);
      }
    }
    // Older releases took the scheme here too; then AWQ quantizes after smoothing itself.
    if (a.has("scheme") || a.has("config_groups")) {
      mixin_.emplace(this->spec());
    } else {
      // Without a scheme, the quantization modifier after AWQ decides what is quantized, and
      // AWQ smooths exactly the layers it quantizes.
      for (const char* key :
           {"targets", "ignore", "weight_observer", "input_observer", "output_observer", "observer",
            "kv_cache_scheme", "bypass_divisibility_checks"}) {
        STUNT_CHECK_AS(RecipeError, !a.has(key), this->spec().where(), ".", key,
                       ": AWQModifier has no scheme here, so the quantization modifier after it "
                       "decides which layers are quantized, and AWQ smooths those; move '",
                       key, "' to that modifier (or give AWQModifier a scheme)");
      }
    }
  }

  bool needs_calibration() const override { return true; }

 protected:
  void on_initialize(State& state) override {
    if (mixin_) mixin_->resolve(state);
  }

  /// Mappings are resolved once every modifier has registered its schemes.
  void on_start(State& state) override {
    model::Model& model = *state.model;
    if (specs_.empty()) specs_ = default_mappings(model.architecture());
    STUNT_CHECK_AS(ValueError, !specs_.empty(), spec().where(),
                   ": AWQ has no default mappings for ", model.architecture(),
                   "; give mappings: [{smooth_layer: ..., balance_layers: [...]}]");
    const std::vector<std::string> tensors = model.tensor_names();
    for (int block = 0; block < model.num_blocks(); ++block) {
      const std::vector<model::Layer*> layers = model.block_layers(block);
      for (const MappingSpec& m : specs_) {
        Mapping r;
        r.block = block;
        for (model::Layer* l : layers) {
          for (const auto& pattern : m.balance) {
            if (name_matches(pattern, l->name)) {
              r.balance.push_back(l);
              break;
            }
          }
        }
        if (r.balance.empty()) continue;
        // The smooth module is the matching module nearest before the balance layers in the same
        // block: a norm (tensor) or a linear layer.
        const std::string prefix = parent_of(parent_of(r.balance.front()->name)) + ".";
        for (model::Layer* l : layers) {
          if (name_matches(m.smooth, l->name)) r.smooth_layer = l;
        }
        for (const std::string& t : tensors) {
          if (t.size() > 7 && t.compare(t.size() - 7, 7, ".weight") == 0 &&
              t.rfind(prefix, 0) == 0 && name_matches(m.smooth, t.substr(0, t.size() - 7))) {
            r.smooth_norm = t.substr(0, t.size() - 7);
          }
        }
        STUNT_CHECK_AS(ValueError, (r.smooth_layer != nullptr) != !r.smooth_norm.empty(),
                       spec().where(), ": in block ", block, " the smooth pattern '", m.smooth,
                       "' must match exactly one module before ", r.balance.front()->name);
        const int64_t channels = r.balance.front()->in_features();
        if (r.smooth_layer != nullptr && r.smooth_layer->out_features() != channels) {
          continue;  // v_proj -> o_proj under grouped-query attention: shapes do not line up
        }
        bool any_quantized = false;
        for (model::Layer* l : r.balance) {
          const quant::LayerQuantization* q = state.quantization.find(l->name);
          any_quantized |= q != nullptr && state.quantization.scheme(q->group).weights.has_value();
        }
        if (!any_quantized) continue;
        // The parent whose output is compared: the one balance layer, or the module holding all.
        r.parent =
            r.balance.size() == 1 ? "" : parent_of(r.balance.front()->name).substr(prefix.size());
        mappings_.push_back(std::move(r));
      }
    }
    STUNT_CHECK_AS(ValueError, !mappings_.empty(), spec().where(),
                   ": no mapping selects quantized layers; AWQ needs a quantization modifier after "
                   "it in the recipe (e.g. QuantizationModifier with scheme W4A16_ASYM)");
    log::info("AWQ: ", mappings_.size(), " mappings, ", n_grid_, " grid points each");
  }

 public:
  std::vector<model::Layer*> calibration_layers(State&, int block) override {
    std::vector<model::Layer*> out;
    for (Mapping& m : mappings_) {
      if (m.block == block) out.push_back(m.balance.front());
    }
    return out;
  }

  void observe(State& state, const model::Layer& layer, const at::Tensor& input) override {
    for (Mapping& m : mappings_) {
      if (m.balance.front() != &layer) continue;
      const at::Tensor rows = input.reshape({-1, input.size(-1)}).to(at::kFloat);
      const at::Tensor sum = rows.abs().sum(0);
      m.x_sum = m.x_sum.defined() ? m.x_sum + sum : sum;
      m.count += rows.size(0);
      m.inputs.push_back(input);
      m.batches.push_back(state.batch);
    }
  }

  void apply_block(State& state, int block) override {
    for (Mapping& m : mappings_) {
      if (m.block != block) continue;
      STUNT_CHECK_AS(ValueError, m.count > 0, spec().where(), ": ", m.balance.front()->name,
                     " never ran during calibration");
      search_and_apply(state, m);
      m.inputs.clear();
      m.x_sum = at::Tensor();
    }
  }

  void finish(State& state) override {
    if (!mixin_) return;
    for (const auto& [layer, group] : mixin_->assignments()) {
      QuantizationMixin::quantize_weight_rtn(state, *layer, state.quantization.scheme(group),
                                             group);
    }
  }

 private:
  struct Mapping {
    int block = 0;
    std::vector<model::Layer*> balance;
    model::Layer* smooth_layer = nullptr;
    std::string smooth_norm;
    std::string parent;
    at::Tensor x_sum;
    int64_t count = 0;
    std::vector<at::Tensor> inputs;
    std::vector<size_t> batches;
  };

  std::vector<at::Tensor> parent_outputs(State& state, const Mapping& m) const {
    std::vector<at::Tensor> out;
    for (size_t i = 0; i < m.inputs.size(); ++i) {
      if (m.parent.empty()) {
        out.push_back(state.model->call(*m.balance.front(), m.inputs[i]));
      } else {
        out.push_back(state.model->run_submodule(m.block, m.parent, m.inputs[i],
                                                 (*state.block_inputs)[m.batches[i]]));
      }
    }
    return out;
  }

  void search_and_apply(State& state, Mapping& m) {
    const at::Tensor x_mean = m.x_sum / static_cast<double>(m.count);
    std::vector<at::Tensor> originals;
    std::vector<const quant::QuantArgs*> schemes;
    for (model::Layer* l : m.balance) {
      originals.push_back(l->weight);
      const quant::LayerQuantization* q = state.quantization.find(l->name);
      const quant::QuantArgs* args = nullptr;
      if (q != nullptr && state.quantization.scheme(q->group).weights) {
        args = &*state.quantization.scheme(q->group).weights;
      }
      schemes.push_back(args);
      STUNT_CHECK_AS(ValueError,
                     args == nullptr || args->resolved_strategy() != quant::QuantStrategy::Tensor ||
                         duo_ == "false",
                     spec().where(), ": duo_scaling needs per-channel or per-group weights (",
                     l->name, " is per tensor); set duo_scaling: false");
    }
    const at::Tensor w_mean = quant::awq_weight_mean(originals, schemes);
    const std::vector<at::Tensor> reference = parent_outputs(state, m);
    double best_loss = std::numeric_limits<double>::infinity();
    at::Tensor best_scales;
    for (const quant::AwqCandidate& candidate : quant::awq_grid(n_grid_, duo_)) {
      const at::Tensor s =
          quant::awq_scales(x_mean, w_mean, candidate, m.balance.front()->weight.scalar_type());
      for (size_t i = 0; i < m.balance.size(); ++i) {
        if (schemes[i] != nullptr) {
          m.balance[i]->weight = quant::awq_fake_quantized(originals[i], s, *schemes[i]);
        }
      }
      const std::vector<at::Tensor> outputs = parent_outputs(state, m);
      double error = 0;
      int64_t elements = 0;
      for (size_t b = 0; b < outputs.size(); ++b) {
        error += (reference[b] - outputs[b]).pow(2).sum().item<double>();
        elements += outputs[b].numel();
      }
      const double loss = error / static_cast<double>(elements);
      if (loss < best_loss) {
        best_loss = loss;
        best_scales = s;
      }
    }
    STUNT_CHECK(best_scales.defined(), spec().where(), ": no finite loss in the AWQ grid for ",
                m.balance.front()->name);
    for (size_t i = 0; i < m.balance.size(); ++i) {
      m.balance[i]->weight = originals[i] * best_scales.unsqueeze(0);
    }
    if (m.smooth_layer != nullptr) {
      model::Layer& smooth = *m.smooth_layer;
      const int64_t n = best_scales.size(0);
      at::Tensor weight = smooth.weight.clone();
      weight.narrow(0, weight.size(0) - n, n).div_(best_scales.unsqueeze(1));
      smooth.weight = weight;
      if (smooth.bias.defined()) smooth.bias = smooth.bias / best_scales;
    } else {
      at::Tensor* norm = state.model->find_tensor(m.smooth_norm + ".weight");
      norm->copy_(*norm / best_scales);
      if (at::Tensor* bias = state.model->find_tensor(m.smooth_norm + ".bias")) {
        bias->copy_(*bias / best_scales);
      }
    }
    log::debug("AWQ ", m.balance.front()->name, ": loss ", best_loss);
  }

  int n_grid_ = 20;
  std::string duo_ = "true";
  std::vector<MappingSpec> specs_;
  std::vector<Mapping> mappings_;
  std::optional<QuantizationMixin> mixin_;
};

}  // namespace

std::unique_ptr<Modifier> make_awq_modifier(const ModifierSpec& spec) {
  return std::make_unique<AwqModifier>(spec);
}

}  // namespace stunt::recipe::detail
