// Modifiers in train stages: gradual magnitude, movement and constant pruning, quantization-aware
// training, and SparseML's epoch and learning-rate modifiers, each built on the trainer's
// callbacks (train/).
#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <algorithm>
#include <limits>
#include <map>
#include <optional>
#include <set>

#include "detail/distillation_modifiers.h"
#include "detail/pruning_targets.h"
#include "detail/quantization_mixin.h"
#include "detail/sparseml_quantization.h"
#include "stunt/core/error.h"
#include "stunt/quant/qparams.h"
#include "stunt/recipe/registry.h"
#include "stunt/recipe/training.h"
#include "stunt/train/gradual_pruning.h"
#include "stunt/train/quantization_aware.h"

namespace stunt::recipe {
namespace {

/// An epoch argument: SparseML's `<name>_epoch`, else llm-compressor's `<name>`; -1 and null
/// mean "not set".
std::optional<double> epoch_arg(const ArgReader& a, const char* sparseml, const char* llmc) {
  for (const char* key : {sparseml, llmc}) {
    if (a.has(key) && a[key].get<double>() >= 0) return a[key].get<double>();
  }
  return std::nullopt;
}

class PruningDuringTraining final : public TrainingModifier {
 public:
  PruningDuringTraining(const ModifierSpec& spec, train::PruningScore score)
      : TrainingModifier(spec),
        targets_(this->spec(),
                 score == train::PruningScore::ExistingZeros ? "sparsity" : "final_sparsity") {
    const ArgReader a = this->spec().reader();
    const std::string& where = this->spec().where();
    base_.score = score;
    base_.structure = targets_.structure();
    if (score == train::PruningScore::ExistingZeros) {
      // SparseML holds the zeros the weights have at start_epoch (-1: the start) until
      // end_epoch (-1: the end).
      base_.hold_from = epoch_arg(a, "start_epoch", "start").value_or(0.0);
      base_.hold_until = epoch_arg(a, "end_epoch", "end");
      STUNT_CHECK_AS(ValueError, !base_.hold_until || *base_.hold_until > base_.hold_from, where,
                     ": end_epoch ", base_.hold_until.value_or(0), " must come after start_epoch ",
                     base_.hold_from, " (or be -1: hold the zeros to the end)");
      a.contains("update_frequency");  // SparseML ignores it for constant pruning
      a.contains("update");
      return;
    }
    STUNT_CHECK_AS(NotImplementedError, !(a.contains("phased") && a["phased"].get<bool>()), where,
                   ".phased: phased pruning is not implemented yet; remove phased");
    prune::GradualSchedule& schedule = base_.schedule;
    schedule.start_epoch = epoch_arg(a, "start_epoch", "start").value_or(0.0);
    schedule.end_epoch = epoch_arg(a, "end_epoch", "end").value_or(schedule.start_epoch);
    schedule.update_frequency = a.has("update_frequency") ? a["update_frequency"].get<double>()
                                : a.has("update")         ? a["update"].get<double>()
                                                          : -1.0;
    schedule.init_sparsity = a.value("init_sparsity", 0.0);
    std::string curve = a.value("inter_func", std::string("cubic"));
    if (a.has("update_scheduler")) curve = a["update_scheduler"].get<std::string>();
    schedule.interpolation = prune::parse_interpolation(curve, where);
    STUNT_CHECK_AS(NotImplementedError, !a.has("scheduler_args") || a["scheduler_args"].empty(),
                   where,
                   ".scheduler_args: arguments for the update scheduler are not implemented yet; "
                   "the curve is inter_func (linear, cubic, inverse_cubic)");
    base_.leave_enabled = a.value("leave_enabled", true);
    base_.global = a.value("global_sparsity", false) || a.value("apply_globally", false);
    a.contains("score_type");  // "magnitude" only, by the schema
    // The schedule's own checks, with each final sparsity the targets will get.
    for (double sparsity : targets_.sparsities()) {
      prune::GradualSchedule s = schedule;
      s.final_sparsity = sparsity;
      s.validate(where);
      STUNT_CHECK_AS(ValueError, s.init_sparsity <= sparsity, where, ": init_sparsity ",
                     s.init_sparsity, " is above final_sparsity ", sparsity,
                     "; gradual pruning only increases sparsity");
      STUNT_CHECK_AS(
          ValueError,
          base_.structure.unstructured() || sparsity <= base_.structure.sparsity() + 1e-9, where,
          ": final_sparsity ", sparsity, " exceeds what mask_structure ",
          base_.structure.to_string(), " allows (", base_.structure.sparsity(), ")");
      STUNT_CHECK_AS(ValueError, !base_.global || base_.structure.unstructured(), where,
                     ": global_sparsity ranks weights across layers, which N:M groups cannot; use "
                     "an unstructured mask or per-layer sparsity");
    }
  }

  void resolve(State& state) override {
    targets_.resolve(*state.model);
    // One schedule per final sparsity: a list of sparsities gives each target its own end.
    std::map<double, std::vector<model::Layer*>> by_sparsity;
    for (const detail::PrunedLayer& p : targets_.layers()) {
      by_sparsity[p.sparsity].push_back(p.layer);
    }
    for (auto& [sparsity, layers] : by_sparsity) {
      train::GradualPruningOptions options = base_;
      // Checkpoint keys: the recipe path (not the file, which may move between runs).
      options.name = by_sparsity.size() == 1 ? spec().path : str(spec().path, "#", sparsity);
      options.schedule.final_sparsity = sparsity;
      pruners_.push_back(std::make_unique<train::GradualPruning>(layers, options));
    }
  }

  std::vector<train::TrainingCallbacks*> callbacks() override {
    std::vector<train::TrainingCallbacks*> out;
    for (auto& p : pruners_) out.push_back(p.get());
    return out;
  }

  void finish(State& state) override {
    // Later stages keep the zeros (GPTQ quantizes them to zero).
    for (const detail::PrunedLayer& p : targets_.layers()) {
      at::Tensor zeros = p.layer->weight.detach() == 0;
      auto it = state.pruned.find(p.layer->name);
      if (it != state.pruned.end()) zeros = zeros.logical_or(it->second);
      state.pruned[p.layer->name] = zeros;
    }
  }

 private:
  detail::PruningTargets targets_;
  train::GradualPruningOptions base_;
  std::vector<std::unique_ptr<train::GradualPruning>> pruners_;
};

/// llm-compressor's QuantizationModifier in a train stage: quantization-aware training of the
/// schemes its config groups give. SparseML's QuantizationModifier runs as its translation.
class QuantizationDuringTraining final : public TrainingModifier {
 public:
  /// SparseML's form: the llm-compressor modifier it translates to, its epochs and strictness.
  QuantizationDuringTraining(const ModifierSpec& spec, detail::SparsemlQuantization sparseml)
      : TrainingModifier(spec),
        translated_(std::move(sparseml.llmcompressor)),
        mixin_(translated_),
        start_(sparseml.start_epoch),
        freeze_(sparseml.freeze_observers_epoch),
        strict_(sparseml.strict) {}

  explicit QuantizationDuringTraining(const ModifierSpec& spec)
      : TrainingModifier(spec), mixin_(this->spec()) {
    const ArgReader a = this->spec().reader();
    const std::string& where = this->spec().where();
    STUNT_CHECK_AS(ValueError, !epoch_arg(a, "end_epoch", "end"), where,
                   ": quantization-aware training runs to the end of training; remove end (or "
                   "set it to -1)");
    a.contains("update");
    estimator_ = a.value("learnable_scales", false) ? quant::FakeQuantEstimator::LearnedStepSize
                                                    : quant::FakeQuantEstimator::StraightThrough;
    start_ = epoch_arg(a, "start_epoch", "start").value_or(0.0);
    if (a.has("disable_quantization_observer_epoch")) {
      freeze_ = a["disable_quantization_observer_epoch"].get<double>();
    }
  }

  void resolve(State& state) override {
    if (strict_) {
      // SparseML's strict: an ignore entry that names nothing is a mistake in the recipe.
      for (const Value& entry : translated_.args.at("ignore")) {
        const std::string name = entry.get<std::string>();
        STUNT_CHECK_AS(ValueError, !state.model->match({name}).empty(), spec().where(),
                       ".ignore: '", name,
                       "' matches no layer of the model (SparseML's strict, "
                       "on by default); correct the name, or set strict: false");
      }
    }
    mixin_.resolve(state);
    std::map<std::string, std::vector<model::Layer*>> by_group;
    for (const auto& [layer, group] : mixin_.assignments()) by_group[group].push_back(layer);
    for (auto& [group, layers] : by_group) {
      train::QuantizationAwareOptions options;
      options.name = by_group.size() == 1 ? spec().path : str(spec().path, "#", group);
      options.scheme = state.quantization.scheme(group);
      options.estimator = estimator_;
      options.start_epoch = start_;
      options.freeze_epoch = freeze_;
      trainers_.push_back(std::make_unique<train::QuantizationAwareTraining>(layers, options));
    }
  }

  std::vector<train::TrainingCallbacks*> callbacks() override {
    std::vector<train::TrainingCallbacks*> out;
    for (auto& t : trainers_) out.push_back(t.get());
    return out;
  }

  void finish(State& state) override {
    for (auto& t : trainers_) t->finalize(state.quantization);
    // The weights become the values saving writes, so that what runs next (evaluation, a
    // later stage) computes what the checkpoint holds.
    c10::NoGradGuard no_grad;
    for (const auto& [layer, group] : mixin_.assignments()) {
      const quant::QuantScheme& scheme = state.quantization.scheme(group);
      const quant::LayerQuantization* record = state.quantization.find(layer->name);
      if (scheme.weights && record != nullptr && record->weight.scale.defined()) {
        layer->weight.copy_(
            quant::fake_quantize_weight(layer->weight, record->weight, *scheme.weights));
      }
    }
  }

 private:
  /// SparseML's form only: the llm-compressor modifier it means (mixin_ reads it).
  ModifierSpec translated_;
  detail::QuantizationMixin mixin_;
  quant::FakeQuantEstimator estimator_ = quant::FakeQuantEstimator::StraightThrough;
  double start_ = 0.0;
  std::optional<double> freeze_;
  bool strict_ = false;
  std::vector<std::unique_ptr<train::QuantizationAwareTraining>> trainers_;
};

/// SparseML's EpochRangeModifier: the run lasts end_epoch epochs.
class EpochRange final : public TrainingModifier {
 public:
  explicit EpochRange(const ModifierSpec& spec) : TrainingModifier(spec) {
    const ArgReader a = this->spec().reader();
    start_ = a["start_epoch"].get<double>();
    end_ = a["end_epoch"].get<double>();
    STUNT_CHECK_AS(NotImplementedError, start_ <= 0, this->spec().where(),
                   ".start_epoch: training starts at epoch 0; an EpochRangeModifier that starts "
                   "later is not implemented yet. Set start_epoch: 0");
    STUNT_CHECK_AS(ValueError, end_ > 0, this->spec().where(), ".end_epoch: ", end_,
                   " must be above 0 (the number of epochs to train)");
  }
  void configure(train::TrainerOptions& options) override { options.epochs = end_; }

 private:
  double start_ = 0, end_ = 0;
};

/// A learning rate a modifier sets from an epoch on (SparseML's SetLearningRateModifier and
/// LearningRateFunctionModifier).
class LearningRateSetter final : public TrainingModifier, public train::TrainingCallbacks {
 public:
  LearningRateSetter(const ModifierSpec& spec, bool function) : TrainingModifier(spec) {
    const ArgReader a = this->spec().reader();
    const std::string& where = this->spec().where();
    STUNT_CHECK_AS(NotImplementedError, !a.has("param_groups"), where,
                   ".param_groups: several parameter groups are not implemented yet (Stunt trains "
                   "one); remove param_groups");
    if (function) {
      const std::string func = a["lr_func"].get<std::string>();
      STUNT_CHECK_AS(NotImplementedError, func != "cyclic_linear", where,
                     ".lr_func: cyclic_linear is not implemented yet; use linear or cosine");
      rate_.shape = train::parse_learning_rate_shape(func, where + ".lr_func");
      rate_.init_lr = a["init_lr"].get<double>();
      rate_.final_lr = a["final_lr"].get<double>();
      rate_.start_epoch = std::max(0.0, a["start_epoch"].get<double>());
      rate_.end_epoch = a["end_epoch"].get<double>();
      STUNT_CHECK_AS(NotImplementedError, !a.has("cycle_epochs"), where,
                     ".cycle_epochs: cyclic schedules are not implemented yet");
      STUNT_CHECK_AS(
          NotImplementedError,
          !a.has("update_frequency") || a["update_frequency"].get<double>() <= 0, where,
          ".update_frequency: changing the rate only every few epochs is not implemented "
          "yet (Stunt changes it every step); remove update_frequency");
      rate_.validate(where);
    } else {
      STUNT_CHECK_AS(ValueError, a.has("learning_rate"), where,
                     ".learning_rate: give the rate to set");
      rate_.shape = train::LearningRateShape::Linear;
      rate_.init_lr = rate_.final_lr = a["learning_rate"].get<double>();
      rate_.start_epoch = a.has("start_epoch") ? std::max(0.0, a["start_epoch"].get<double>()) : 0;
      rate_.end_epoch = a.has("end_epoch") && a["end_epoch"].get<double>() > 0
                            ? a["end_epoch"].get<double>()
                            : std::numeric_limits<double>::infinity();
      a.contains("constant_logging");  // how often SparseML logged the rate
    }
  }
  std::vector<train::TrainingCallbacks*> callbacks() override { return {this}; }
  std::string name() const override { return spec().path; }
  std::optional<double> learning_rate(const train::StepInfo& info) override {
    if (info.epoch < rate_.start_epoch) return std::nullopt;
    return rate_.at(info.epoch);  // past the end, the final rate holds
  }

 private:
  train::LearningRateFunction rate_;
};

/// SparseML's SetWeightDecayModifier, from the start of training.
class WeightDecay final : public TrainingModifier {
 public:
  explicit WeightDecay(const ModifierSpec& spec) : TrainingModifier(spec) {
    const ArgReader a = this->spec().reader();
    decay_ = a["weight_decay"].get<double>();
    STUNT_CHECK_AS(
        NotImplementedError, !a.has("start_epoch") || a["start_epoch"].get<double>() <= 0,
        this->spec().where(),
        ".start_epoch: weight decay is set for the whole run; changing it mid-run is not "
        "implemented. Set start_epoch: 0");
    STUNT_CHECK_AS(NotImplementedError, !a.has("param_groups"), this->spec().where(),
                   ".param_groups: several parameter groups are not implemented yet (Stunt trains "
                   "one); remove param_groups");
    a.contains("constant_logging");
  }
  void configure(train::TrainerOptions& options) override {
    options.optimizer.weight_decay = decay_;
  }

 private:
  double decay_ = 0;
};

}  // namespace

bool runs_in_training(const std::string& type, RecipeSyntax syntax) {
  static const std::set<std::string> types = {"GMPruningModifier",
                                              "MagnitudePruningModifier",
                                              "MovementPruningModifier",
                                              "ConstantPruningModifier",
                                              "EpochRangeModifier",
                                              "SetLearningRateModifier",
                                              "LearningRateFunctionModifier",
                                              "SetWeightDecayModifier",
                                              "DistillationModifier",
                                              "PerLayerDistillationModifier",
                                              "OutputDistillationModifier",
                                              "AttentionDistillationModifier"};
  return types.count(type) > 0 || type == "QuantizationModifier";
}

std::unique_ptr<TrainingModifier> make_training_modifier(const ModifierSpec& spec,
                                                         RecipeSyntax syntax) {
  const ModifierRegistry& registry = ModifierRegistry::builtin();
  registry.validate(spec, syntax, spec.source);
  ModifierSpec located = spec;
  located.read_keys.clear();
  std::unique_ptr<TrainingModifier> modifier;
  const std::string& type = spec.type;
  if (type == "GMPruningModifier" || type == "MagnitudePruningModifier") {
    modifier = std::make_unique<PruningDuringTraining>(located, train::PruningScore::Magnitude);
  } else if (type == "MovementPruningModifier") {
    modifier = std::make_unique<PruningDuringTraining>(located, train::PruningScore::Movement);
  } else if (type == "ConstantPruningModifier") {
    modifier = std::make_unique<PruningDuringTraining>(located, train::PruningScore::ExistingZeros);
  } else if (type == "QuantizationModifier" && syntax == RecipeSyntax::LlmCompressor) {
    modifier = std::make_unique<QuantizationDuringTraining>(located);
  } else if (type == "QuantizationModifier") {
    detail::SparsemlQuantization translated = detail::translate_sparseml_quantization(located);
    modifier = std::make_unique<QuantizationDuringTraining>(located, std::move(translated));
  } else if (type == "EpochRangeModifier") {
    modifier = std::make_unique<EpochRange>(located);
  } else if (type == "SetLearningRateModifier") {
    modifier = std::make_unique<LearningRateSetter>(located, /*function=*/false);
  } else if (type == "LearningRateFunctionModifier") {
    modifier = std::make_unique<LearningRateSetter>(located, /*function=*/true);
  } else if (type == "SetWeightDecayModifier") {
    modifier = std::make_unique<WeightDecay>(located);
  } else if (type == "DistillationModifier") {
    modifier = detail::make_logit_distillation(located);
  } else if (type == "PerLayerDistillationModifier" || type == "OutputDistillationModifier") {
    modifier =
        detail::make_hidden_state_distillation(located, type == "PerLayerDistillationModifier");
  } else if (type == "AttentionDistillationModifier") {
    modifier = detail::make_attention_distillation(located);
  } else {
    STUNT_ASSERT(!runs_in_training(type, syntax), type, " has no training form");
    throw NotImplementedError(
        str(spec.where(), ": ", type,
            " is not implemented yet in train stages; they run GMPruningModifier, "
            "MagnitudePruningModifier, MovementPruningModifier, ConstantPruningModifier, "
            "QuantizationModifier (quantization-aware training), EpochRangeModifier, "
            "SetLearningRateModifier, LearningRateFunctionModifier, SetWeightDecayModifier, "
            "DistillationModifier, PerLayerDistillationModifier, OutputDistillationModifier and "
            "AttentionDistillationModifier. "
            "Move one-shot modifiers into a one-shot stage"));
  }
  // Nothing accepted and ignored: every given argument that acts was read.
  const ModifierInfo* info = registry.find(type, syntax);
  for (auto it = spec.args.begin(); it != spec.args.end(); ++it) {
    const auto& fields = info->schema.fields();
    const auto f = std::find_if(fields.begin(), fields.end(),
                                [&](const Field& x) { return x.name == it.key(); });
    if (f == fields.end() || f->use != FieldUse::Acts) continue;
    if (modifier->spec().read_keys.count(it.key())) continue;
    throw InternalError(str(spec.where(), ".", it.key(), ": ", type,
                            " accepts this argument but no code reads it in a train stage; "
                            "please report this (and remove the argument to run meanwhile)"));
  }
  return modifier;
}

}  // namespace stunt::recipe
