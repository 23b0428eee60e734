#include "stunt/train/quantization_aware.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include "stunt/core/error.h"

namespace stunt::train {
namespace {

using quant::FakeQuantEstimator;
using quant::QParams;

/// llm-compressor's default observers: the weight's current range, a moving average of inputs.
constexpr const char* kWeightObserver = "memoryless_minmax";
constexpr const char* kInputObserver = "minmax";

QParams detached(const QParams& qp) {
  return {qp.scale.detach().clone(), qp.zero_point.detach().clone()};
}

nlohmann::ordered_json shape_json(const std::vector<int64_t>& shape) {
  return nlohmann::ordered_json(shape);
}

}  // namespace

struct QuantizationAwareTraining::Layer {
  model::Layer* layer = nullptr;
  std::unique_ptr<quant::Observer> weight_observer;
  /// Whether the weight observer keeps no statistics (memoryless_*): then observing the current
  /// weight anywhere (an evaluation too) changes nothing but the scales in use.
  bool memoryless = true;
  /// The weight's scales: frozen values or the latest observed; for learned step sizes the
  /// initial scale and the learned zero point (a leaf, asymmetric schemes).
  QParams weight;
  /// Learned step sizes (LSQ) as logarithms, the leaves the optimizer updates. Adam moves every
  /// parameter by about the learning rate whatever its size, and step sizes span orders of
  /// magnitude across groups: in log space each step changes a scale by a similar fraction,
  /// where a plain scale of a small group would change sign. The gradient reaching the scale is
  /// LSQ's (gradient-scaled), times the scale (chain rule through exp).
  at::Tensor log_scale;
  /// The scale the forward uses.
  at::Tensor scale() const { return log_scale.defined() ? log_scale.exp() : weight.scale; }
  std::unique_ptr<quant::Observer> input_observer;
  QParams input;
};

QuantizationAwareTraining::QuantizationAwareTraining(std::vector<model::Layer*> layers,
                                                     QuantizationAwareOptions options)
    : options_(std::move(options)) {
  const std::string& where = options_.name;
  const quant::QuantScheme& scheme = options_.scheme;
  STUNT_CHECK_AS(ValueError, scheme.weights || scheme.input_activations, where,
                 ": the scheme quantizes neither weights nor input activations");
  STUNT_CHECK_AS(ValueError, !scheme.output_activations, where,
                 ": quantization-aware training of output activations is not implemented; "
                 "remove output_activations from the scheme");
  STUNT_CHECK_AS(ValueError, !layers.empty(), where, ": no layer to quantize");
  const bool learned = options_.estimator == FakeQuantEstimator::LearnedStepSize;
  for (model::Layer* layer : layers) {
    STUNT_CHECK_AS(ValueError, layer->kind == model::LayerKind::Linear, where, ": ", layer->name,
                   " is a ", layer->class_name,
                   " layer; quantization-aware training fake-quantizes linear layers only. Add it "
                   "to ignore");
    STUNT_CHECK_AS(ValueError, layer->reachable, where, ": ", layer->name,
                   " is a plain torch::nn::Linear, whose forward Stunt cannot fake-quantize; "
                   "build it as stunt::nn::Linear (stunt/model/module_model.h), a drop-in with "
                   "the same constructor and parameters, or add it to ignore");
    auto entry = std::make_unique<Layer>();
    entry->layer = layer;
    if (scheme.weights) {
      const quant::QuantArgs& args = *scheme.weights;
      quant::num_groups(args, layer->in_features(), where + ": " + layer->name);
      const std::string observer = args.observer.value_or(kWeightObserver);
      entry->memoryless = observer.rfind("memoryless", 0) == 0;
      entry->weight_observer = quant::Observer::create(observer, args, quant::Observed::Weight);
      entry->weight = detached(entry->weight_observer->update(layer->weight.detach()));
      // Trying the forward once refuses strategies and types training cannot simulate now,
      // rather than at the first step.
      try {
        quant::fake_quantize_weight_for_training(layer->weight.detach(), entry->weight, args,
                                                 options_.estimator);
      } catch (const ValueError& e) {
        throw ValueError(str(where, ": ", layer->name, ": ", e.what()));
      }
      if (learned) {
        entry->log_scale = entry->weight.scale.clamp_min(1e-12).log().detach().requires_grad_(true);
        if (!args.symmetric) entry->weight.zero_point.requires_grad_(true);
      }
    }
    if (scheme.input_activations) {
      const quant::QuantArgs& args = *scheme.input_activations;
      if (args.dynamic == quant::DynamicKind::Static) {
        STUNT_CHECK_AS(ValueError, args.resolved_strategy() == quant::QuantStrategy::Tensor, where,
                       ": static input activations train with strategy tensor, not '",
                       quant::to_string(args.resolved_strategy()), "'");
        entry->input_observer = quant::Observer::create(args.observer.value_or(kInputObserver),
                                                        args, quant::Observed::Activation);
      } else {
        STUNT_CHECK_AS(ValueError,
                       args.resolved_strategy() == quant::QuantStrategy::Token ||
                           args.resolved_strategy() == quant::QuantStrategy::Tensor,
                       where,
                       ": dynamic input activations train with strategy token or tensor, not '",
                       quant::to_string(args.resolved_strategy()), "'");
      }
    }
    layers_.push_back(std::move(entry));
  }
}

QuantizationAwareTraining::~QuantizationAwareTraining() = default;

std::vector<std::pair<std::string, at::Tensor>> QuantizationAwareTraining::parameters() {
  std::vector<std::pair<std::string, at::Tensor>> out;
  if (options_.estimator != FakeQuantEstimator::LearnedStepSize || !options_.scheme.weights) {
    return out;
  }
  for (const auto& l : layers_) {
    out.emplace_back(l->layer->name + ".weight_log_scale", l->log_scale);
    if (l->weight.zero_point.requires_grad()) {
      out.emplace_back(l->layer->name + ".weight_zero_point", l->weight.zero_point);
    }
  }
  return out;
}

QParams QuantizationAwareTraining::weight_qparams(size_t index) const {
  const Layer& l = *layers_.at(index);
  return {l.scale(), l.weight.zero_point};
}

at::Tensor QuantizationAwareTraining::forward(size_t index, const at::Tensor& input) {
  Layer& l = *layers_[index];
  const quant::QuantScheme& scheme = options_.scheme;
  // Observers learn from training forwards only, not from evaluations between steps.
  const bool observing = !frozen_ && at::GradMode::is_enabled();
  at::Tensor x = input;
  if (scheme.input_activations) {
    const quant::QuantArgs& args = *scheme.input_activations;
    if (l.input_observer) {
      if (observing || !l.input.scale.defined()) l.input = l.input_observer->update(x);
      x = quant::fake_quantize_activation_for_training(x, args, &l.input,
                                                       FakeQuantEstimator::StraightThrough);
    } else {
      x = quant::fake_quantize_activation_for_training(x, args, nullptr,
                                                       FakeQuantEstimator::StraightThrough);
    }
  }
  at::Tensor w = l.layer->weight;
  if (scheme.weights) {
    const bool learned = options_.estimator == FakeQuantEstimator::LearnedStepSize;
    // Until frozen, weights are observed on training forwards, and on evaluations too when
    // the observer keeps no statistics: they then see the weights saving writes.
    if (!learned && !frozen_ && (observing || l.memoryless)) {
      l.weight = l.weight_observer->update(w.detach());
    }
    w = quant::fake_quantize_weight_for_training(w, QParams{l.scale(), l.weight.zero_point},
                                                 *scheme.weights, options_.estimator);
  }
  return at::linear(x, w, l.layer->bias);
}

void QuantizationAwareTraining::enable() {
  if (enabled()) return;
  for (size_t i = 0; i < layers_.size(); ++i) {
    swaps_.push_back(std::make_unique<model::LayerSwap>(
        *layers_[i]->layer,
        [this, i](const at::Tensor& input, const model::Layer&) { return forward(i, input); }));
  }
}

void QuantizationAwareTraining::freeze() {
  if (frozen_) return;
  frozen_ = true;
  if (options_.estimator == FakeQuantEstimator::LearnedStepSize) return;
  for (const auto& l : layers_) {
    if (l->weight_observer) {
      l->weight = detached(l->weight_observer->update(l->layer->weight.detach()));
    }
  }
}

void QuantizationAwareTraining::on_train_start(const StepInfo& info) {
  if (restored_enabled_ || info.epoch >= options_.start_epoch - 1e-9) enable();
  if (options_.freeze_epoch && info.epoch >= *options_.freeze_epoch - 1e-9) freeze();
}

void QuantizationAwareTraining::on_optimizer_post_step(const StepInfo& info) {
  if (!enabled() && info.epoch >= options_.start_epoch - 1e-9) enable();
  if (options_.freeze_epoch && info.epoch >= *options_.freeze_epoch - 1e-9) freeze();
}

void QuantizationAwareTraining::synchronize(ProcessGroup& group) {
  if (frozen_) return;
  std::vector<Layer*> observed;
  std::vector<at::Tensor> statistics;
  for (const auto& l : layers_) {
    if (!l->input_observer || !l->input_observer->has_data()) continue;
    const quant::Observer::Statistics s = l->input_observer->statistics();
    observed.push_back(l.get());
    statistics.push_back(s.min.clone());
    statistics.push_back(s.max.clone());
  }
  group.average(statistics);
  for (size_t i = 0; i < observed.size(); ++i) {
    quant::Observer& observer = *observed[i]->input_observer;
    observer.restore({statistics[2 * i], statistics[2 * i + 1], observer.statistics().scale_shape});
    observed[i]->input = observer.qparams();
  }
}

void QuantizationAwareTraining::save_state(CallbackState& state) const {
  state.json["enabled"] = enabled();
  state.json["frozen"] = frozen_;
  nlohmann::ordered_json shapes = nlohmann::ordered_json::object();
  for (const auto& l : layers_) {
    const std::string& name = l->layer->name;
    // Learned scales travel with the parameters; the others are state.
    if (l->weight.scale.defined() && !l->log_scale.defined()) {
      state.tensors[name + ".weight_scale"] = l->weight.scale;
      state.tensors[name + ".weight_zero_point"] = l->weight.zero_point;
    }
    if (l->weight_observer && !l->memoryless && l->weight_observer->has_data()) {
      const quant::Observer::Statistics s = l->weight_observer->statistics();
      state.tensors[name + ".weight_min"] = s.min;
      state.tensors[name + ".weight_max"] = s.max;
      state.json["weight_scale_shapes"][name] = shape_json(s.scale_shape);
    }
    if (l->input_observer && l->input_observer->has_data()) {
      const quant::Observer::Statistics s = l->input_observer->statistics();
      state.tensors[name + ".input_min"] = s.min;
      state.tensors[name + ".input_max"] = s.max;
      state.tensors[name + ".input_scale"] = l->input.scale;
      state.tensors[name + ".input_zero_point"] = l->input.zero_point;
      shapes[name] = shape_json(s.scale_shape);
    }
  }
  state.json["input_scale_shapes"] = shapes;
}

void QuantizationAwareTraining::load_state(const CallbackState& state) {
  restored_enabled_ = state.json.at("enabled").get<bool>();
  frozen_ = state.json.at("frozen").get<bool>();
  const auto& shapes = state.json.at("input_scale_shapes");
  const nlohmann::ordered_json weight_shapes =
      state.json.value("weight_scale_shapes", nlohmann::ordered_json::object());
  for (const auto& l : layers_) {
    const std::string& name = l->layer->name;
    auto scale = state.tensors.find(name + ".weight_scale");
    if (scale != state.tensors.end()) {
      l->weight = {scale->second, state.tensors.at(name + ".weight_zero_point")};
    }
    if (l->weight_observer && weight_shapes.contains(name)) {
      l->weight_observer->restore({state.tensors.at(name + ".weight_min"),
                                   state.tensors.at(name + ".weight_max"),
                                   weight_shapes.at(name).get<std::vector<int64_t>>()});
    }
    if (l->input_observer && shapes.contains(name)) {
      l->input_observer->restore({state.tensors.at(name + ".input_min"),
                                  state.tensors.at(name + ".input_max"),
                                  shapes.at(name).get<std::vector<int64_t>>()});
      l->input = {state.tensors.at(name + ".input_scale"),
                  state.tensors.at(name + ".input_zero_point")};
    }
  }
}

void QuantizationAwareTraining::finalize(quant::QuantizationPlan& plan) {
  const std::string group = plan.add_group(options_.scheme);
  const quant::QuantScheme& scheme = options_.scheme;
  for (const auto& l : layers_) {
    quant::LayerQuantization& record = plan.layer(l->layer->name);
    record.group = group;
    if (scheme.weights) {
      if (options_.estimator == FakeQuantEstimator::LearnedStepSize) {
        // The saved zero point is the one the forward used: rounded and clamped.
        const kernels::QuantRange range = quant::quant_range(*scheme.weights);
        record.weight = {l->scale().detach().clone(),
                         at::clamp(at::round(l->weight.zero_point.detach()), range.min, range.max)};
      } else if (frozen_) {
        record.weight = detached(l->weight);
      } else if (l->memoryless) {
        record.weight = detached(l->weight_observer->update(l->layer->weight.detach()));
      } else {
        // A running observer's statistics, as the last training forward left them.
        record.weight = detached(l->weight_observer->qparams());
      }
    }
    if (l->input_observer && l->input.scale.defined()) record.input = detached(l->input);
  }
  swaps_.clear();
}

}  // namespace stunt::train
