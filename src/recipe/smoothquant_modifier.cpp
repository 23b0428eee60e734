// SmoothQuantModifier: moves activation outliers into the following weights (Xiao et al. 2022),
// so that int8 activations lose less.
#include <ATen/ATen.h>

#include <algorithm>

#include "detail/quantization_modifiers.h"
#include "stunt/core/error.h"
#include "stunt/core/logging.h"
#include "stunt/core/name_pattern.h"
#include "stunt/core/strings.h"
#include "stunt/model/architecture.h"
#include "stunt/quant/smoothquant.h"

namespace stunt::recipe::detail {
namespace {

struct Mapping {
  std::vector<std::string> balance;
  std::string smooth;
};

/// The architecture's default mappings (stunt/model/architecture.h).
std::vector<Mapping> default_mappings(const std::string& architecture) {
  std::vector<Mapping> out;
  for (const model::SmoothingMapping& m :
       model::architecture_traits(architecture).smoothquant_mappings) {
    out.push_back({m.balance, m.smooth});
  }
  return out;
}

/// The prefix every layer of a block shares ("model.layers.3.").
std::string block_prefix(const std::vector<model::Layer*>& layers) {
  std::string prefix = layers.front()->name;
  for (const model::Layer* l : layers) {
    size_t n = 0;
    while (n < prefix.size() && n < l->name.size() && prefix[n] == l->name[n]) ++n;
    prefix.resize(n);
  }
  const auto dot = prefix.rfind('.');
  return dot == std::string::npos ? "" : prefix.substr(0, dot + 1);
}

class SmoothQuantModifier final : public Modifier {
 public:
  explicit SmoothQuantModifier(ModifierSpec spec) : Modifier(std::move(spec)) {
    const ArgReader a = this->spec().reader();
    if (a.contains("smoothing_strength")) alpha_ = a["smoothing_strength"].get<double>();
    log_equalization_ = this->spec().type == "LogarithmicEqualizationModifier" ||
                        a.value("algorithm", std::string("smoothquant")) == "log_equalization";
    if (a.contains("mappings") && !a["mappings"].is_null()) {
      for (const auto& m : a["mappings"]) {
        Mapping mapping;
        for (const auto& b : m[0]) mapping.balance.push_back(b.get<std::string>());
        mapping.smooth = m[1].get<std::string>();
        mappings_.push_back(mapping);
      }
    }
    // llm-compressor counts calibration steps of its dataloader, one sample each in oneshot.
    if (a.has("num_calibration_steps")) {
      max_samples_ = a["num_calibration_steps"].get<int64_t>();
    }
    if (a.contains("ignore") && !a["ignore"].is_null()) {
      if (a["ignore"].is_string()) {
        ignore_.push_back(a["ignore"].get<std::string>());
      } else {
        for (const auto& i : a["ignore"]) ignore_.push_back(i.get<std::string>());
      }
    }
  }

  bool needs_calibration() const override { return true; }
  /// Per-channel minima and maxima do not depend on how samples are grouped into forwards.
  bool batch_invariant() const override { return true; }
  /// Smoothing divides a norm's weight by the scales and multiplies them into the layers it
  /// feeds: the block computes the same outputs.
  bool preserves_outputs() const override { return true; }

 protected:
  void on_initialize(State& state) override {
    model::Model& model = *state.model;
    if (mappings_.empty()) mappings_ = default_mappings(model.architecture());
    STUNT_CHECK_AS(ValueError, !mappings_.empty(), spec().where(),
                   ": SmoothQuant has no default "
                   "mappings for ",
                   model.architecture(),
                   "; give mappings: [[[balance layer "
                   "patterns], smooth layer pattern], ...]");
    const std::vector<std::string> tensors = model.tensor_names();
    for (int block = 0; block < model.num_blocks(); ++block) {
      const std::vector<model::Layer*> layers = model.block_layers(block);
      if (layers.empty()) continue;
      const std::string prefix = block_prefix(layers);
      for (const Mapping& m : mappings_) {
        Resolved r;
        r.block = block;
        for (model::Layer* layer : model.match(m.balance)) {
          if (layer->block == block) r.balance.push_back(layer);
        }
        for (const std::string& t : tensors) {
          const auto dot = t.rfind('.');
          if (dot == std::string::npos || t.substr(dot) != ".weight" || t.rfind(prefix, 0) != 0)
            continue;
          const std::string module = t.substr(0, dot);
          if (name_matches(m.smooth, module)) {
            STUNT_CHECK_AS(ValueError, r.smooth.empty(), spec().where(), ": smooth pattern '",
                           m.smooth, "' matches both ", r.smooth, " and ", module, " in block ",
                           block, "; make it match one module per block");
            r.smooth = module;
          }
        }
        if (r.balance.empty() && r.smooth.empty()) continue;
        STUNT_CHECK_AS(ValueError, !r.balance.empty() && !r.smooth.empty(), spec().where(),
                       ": in block ", block, " the mapping [", join(m.balance, ", "), "] <- ",
                       m.smooth, " found ", r.balance.size(), " balance layers and ",
                       r.smooth.empty() ? "no" : "one", " smooth module; both are needed");
        // llm-compressor skips a mapping only when every module in it is ignored.
        auto ignored = [&](const std::string& name) {
          for (const std::string& i : ignore_) {
            if (name_matches(i, name)) return true;
          }
          return false;
        };
        bool all_ignored = ignored(r.smooth);
        for (model::Layer* l : r.balance) all_ignored = all_ignored && ignored(l->name);
        if (all_ignored) continue;
        const int64_t channels = r.balance.front()->in_features();
        for (model::Layer* l : r.balance) {
          STUNT_CHECK_AS(ValueError, l->in_features() == channels, spec().where(), ": ", l->name,
                         " takes ", l->in_features(), " inputs but ", r.balance.front()->name,
                         " takes ", channels, "; balance layers must share their input");
        }
        at::Tensor* weight = model.find_tensor(r.smooth + ".weight");
        STUNT_CHECK_AS(ValueError, weight->dim() == 1 && weight->size(0) == channels,
                       spec().where(), ": ", r.smooth, ".weight is ", weight->sizes(),
                       ", expected [", channels, "] (a norm feeding the balance layers)");
        resolved_.push_back(std::move(r));
      }
    }
    STUNT_CHECK_AS(ValueError, !resolved_.empty(), spec().where(),
                   ": the mappings match nothing in this model");
    log::info(spec().type, ": ", resolved_.size(), " smoothing mappings, strength ", alpha_);
  }

 public:
  std::vector<model::Layer*> calibration_layers(State&, int block) override {
    std::vector<model::Layer*> out;
    for (Resolved& r : resolved_) {
      if (r.block == block) out.push_back(r.balance.front());
    }
    return out;
  }

  void observe(State&, const model::Layer& layer, const at::Tensor& input) override {
    for (Resolved& r : resolved_) {
      if (r.balance.front() != &layer) continue;
      // A 3-D input holds one calibration sample per row; only the first max_samples_ count.
      at::Tensor samples = input.dim() == 3 ? input : input.unsqueeze(0);
      if (max_samples_ > 0) {
        const int64_t take = std::min(samples.size(0), max_samples_ - r.samples);
        if (take <= 0) continue;
        samples = samples.narrow(0, 0, take);
      }
      r.samples += samples.size(0);
      const at::Tensor rows = samples.reshape({-1, samples.size(-1)});
      const at::Tensor lo = std::get<0>(rows.min(0));
      const at::Tensor hi = std::get<0>(rows.max(0));
      r.min = r.min.defined() ? at::minimum(r.min, lo) : lo;
      r.max = r.max.defined() ? at::maximum(r.max, hi) : hi;
    }
  }

  void apply_block(State& state, int block) override {
    for (Resolved& r : resolved_) {
      if (r.block != block) continue;
      STUNT_CHECK_AS(ValueError, r.min.defined(), spec().where(), ": ", r.balance.front()->name,
                     " never ran during calibration");
      const at::Tensor range = r.max - r.min;
      std::vector<at::Tensor> weights;
      for (model::Layer* l : r.balance) weights.push_back(l->weight);
      const at::Tensor scales = log_equalization_
                                    ? quant::log_equalization_scales(range)
                                    : quant::smoothquant_scales(range, weights, alpha_);
      for (model::Layer* l : r.balance) l->weight = l->weight * scales.unsqueeze(0);
      at::Tensor* weight = state.model->find_tensor(r.smooth + ".weight");
      weight->copy_(*weight / scales);
      if (at::Tensor* bias = state.model->find_tensor(r.smooth + ".bias")) {
        bias->copy_(*bias / scales);
      }
      r.min = at::Tensor();
      r.max = at::Tensor();
    }
  }

 private:
  struct Resolved {
    int block = 0;
    std::vector<model::Layer*> balance;
    std::string smooth;
    at::Tensor min, max;
    /// Calibration samples observed so far.
    int64_t samples = 0;
  };
  double alpha_ = 0.5;
  /// num_calibration_steps: how many calibration samples to observe (0: all).
  int64_t max_samples_ = 0;
  bool log_equalization_ = false;
  std::vector<Mapping> mappings_;
  std::vector<std::string> ignore_;
  std::vector<Resolved> resolved_;
};

}  // namespace

std::unique_ptr<Modifier> make_smoothquant_modifier(const ModifierSpec& spec) {
  return std::make_unique<SmoothQuantModifier>(spec);
}

}  // namespace stunt::recipe::detail
