#include "stunt/recipe/session.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <algorithm>
#include <cmath>
#include <fstream>

#include <nlohmann/json.hpp>

#include "detail/distillation_modifiers.h"
#include "stunt/core/atomic_file.h"
#include "stunt/core/error.h"
#include "stunt/core/strings.h"
#include "stunt/io/safetensors.h"
#include "stunt/model/hf_model.h"
#include "stunt/model/module_model.h"
#include "stunt/prune/gradual_schedule.h"
#include "stunt/quant/compressed_tensors.h"
#include "stunt/recipe/registry.h"

namespace stunt::recipe {

CompressionSession::CompressionSession(model::Model& model, Recipe recipe, SessionOptions options)
    : model_(model), recipe_(std::move(recipe)), session_options_(std::move(options)) {
  validate_recipe(recipe_, ModifierRegistry::builtin());
  const std::string& source = recipe_.source;
  STUNT_CHECK_AS(ValueError, session_options_.steps_per_epoch > 0, source,
                 ": the session needs steps_per_epoch > 0 (the optimizer steps of one epoch of "
                 "your loop), got ",
                 session_options_.steps_per_epoch);
  STUNT_CHECK_AS(RecipeError, !recipe_.stages.empty(), source, ": the recipe has no stage");
  const Stage& first = recipe_.stages.front();
  STUNT_CHECK_AS(RecipeError, first.run_type != "oneshot", source, ": ", first.name,
                 ": run_type oneshot; a training session runs train stages (remove run_type, or "
                 "set it to train)");
  // One training run: one stage, or SparseML's stages, which share one epoch count.
  STUNT_CHECK_AS(RecipeError, training_run_end(recipe_, 0) == recipe_.stages.size(), source,
                 ": a training session runs one training run, and this recipe has ",
                 recipe_.stages.size(), " stages that ",
                 recipe_.syntax == RecipeSyntax::SparseML ? "are not all train stages"
                                                          : "each train on their own",
                 "; run the other stages with `compress` or split the recipe");
  // Every modifier is built and resolved before any acts, so that a refused recipe leaves the
  // model as it was.
  state_.model = &model_;
  state_.target = session_options_.target;
  state_.teacher = session_options_.teacher;
  double schedule_end = 0.0;
  for (const Stage& stage : recipe_.stages) {
    for (const ModifierSpec& spec : stage.modifiers) {
      ModifierSpec located = spec;
      located.source = source;
      modifiers_.push_back(make_training_modifier(located, recipe_.syntax));
      distils_ |= detail::is_distillation_modifier(spec.type);
    }
    schedule_end = std::max(schedule_end, schedule_end_epoch(stage));
  }
  for (auto& m : modifiers_) m->resolve(state_);
  options_.epochs = std::max(1.0, schedule_end);
  for (auto& m : modifiers_) m->configure(options_);
  for (auto& m : modifiers_) {
    for (train::TrainingCallbacks* cb : m->callbacks()) {
      callbacks_.push_back(cb);
      for (auto& named : cb->parameters()) parameters_.push_back(std::move(named));
    }
  }
  info_.steps_per_epoch = session_options_.steps_per_epoch;
  info_.total_steps = static_cast<int64_t>(
      std::ceil(options_.epochs * static_cast<double>(info_.steps_per_epoch) - 1e-9));
}

void CompressionSession::start() {
  if (started_) return;
  started_ = true;
  if (train::ProcessGroup* group = session_options_.process_group.get()) {
    // Ranks start from rank 0's tensors, as torch's DistributedDataParallel does.
    c10::NoGradGuard no_grad;
    std::vector<at::Tensor> tensors;
    for (const auto& [name, tensor] : model_.state_dict()) tensors.push_back(tensor);
    for (const auto& [name, tensor] : parameters_) tensors.push_back(tensor);
    group->broadcast(tensors);
  }
  info_.epoch = prune::epoch_after_steps(info_.step, info_.steps_per_epoch);
  for (train::TrainingCallbacks* cb : callbacks_) cb->on_train_start(info_);
}

std::string CompressionSession::identity() const {
  return str(recipe_.to_yaml(), "\nsteps_per_epoch ", info_.steps_per_epoch);
}

bool CompressionSession::writes() const {
  return session_options_.process_group == nullptr || session_options_.process_group->rank() == 0;
}

void CompressionSession::save_state(const std::filesystem::path& folder) const {
  require(phase_ == Phase::BetweenSteps, "save_state", "save between steps");
  if (!writes()) return;
  std::vector<io::NamedTensor> tensors;
  nlohmann::ordered_json methods = nlohmann::ordered_json::object();
  for (train::TrainingCallbacks* cb : callbacks_) {
    train::CallbackState state;
    cb->save_state(state);
    for (const auto& [key, tensor] : state.tensors) {
      tensors.emplace_back("method/" + cb->name() + "/" + key, tensor.detach());
    }
    methods[cb->name()] = state.json;
  }
  for (const auto& [name, tensor] : parameters_) {
    tensors.emplace_back("parameter/" + name, tensor.detach());
  }
  AtomicDirectory out(folder, {.overwrite = true});
  io::save_safetensors(out.staging() / "session.safetensors", tensors);
  const nlohmann::ordered_json json = {{"format", "stunt-compression-session"},
                                       {"version", 1},
                                       {"step", info_.step},
                                       {"started", started_},
                                       {"identity", identity()},
                                       {"methods", methods}};
  write_file_atomic(out.staging() / "session.json", json.dump(2) + "\n");
  out.commit();
}

void CompressionSession::load_state(const std::filesystem::path& folder) {
  require(!started_ && phase_ == Phase::BetweenSteps, "load_state",
          "restore a saved state before the first batch_start");
  const std::filesystem::path json_path = folder / "session.json";
  STUNT_CHECK_AS(IoError, std::filesystem::is_regular_file(json_path), json_path.string(),
                 " does not exist; load_state reads a folder that save_state wrote");
  nlohmann::json json;
  try {
    std::ifstream in(json_path);
    json = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(str(json_path.string(), ": not valid JSON (", e.what(), ")"));
  }
  STUNT_CHECK_AS(FormatError,
                 json.value("format", std::string()) == "stunt-compression-session" &&
                     json.value("version", 0) == 1 && json.contains("step") &&
                     json.contains("methods") && json.contains("identity"),
                 json_path.string(), ": not a session state written by save_state");
  STUNT_CHECK_AS(ValueError, json["identity"].get<std::string>() == identity(), folder.string(),
                 ": this state was saved by a session with another recipe or steps_per_epoch; "
                 "resume with the same recipe file and loop, or start afresh");
  const auto file = io::SafetensorsFile::open(folder / "session.safetensors");
  std::map<std::string, train::CallbackState> states;
  for (const auto& [name, stored] : file->tensors()) {
    if (name.rfind("parameter/", 0) == 0) continue;
    const at::Tensor tensor = stored.clone();
    const size_t slash = name.find('/', 7);
    STUNT_CHECK_AS(FormatError, name.rfind("method/", 0) == 0 && slash != std::string::npos,
                   (folder / "session.safetensors").string(), ": unexpected tensor '", name, "'");
    states[name.substr(7, slash - 7)].tensors[name.substr(slash + 1)] = tensor;
  }
  c10::NoGradGuard no_grad;
  for (const auto& [name, tensor] : parameters_) {
    const std::string key = "parameter/" + name;
    STUNT_CHECK_AS(FormatError, file->contains(key), (folder / "session.safetensors").string(),
                   ": no tensor '", key, "'");
    tensor.copy_(file->tensor(key));
  }
  for (train::TrainingCallbacks* cb : callbacks_) {
    STUNT_CHECK_AS(FormatError, json["methods"].contains(cb->name()), json_path.string(),
                   ": no state for ", cb->name());
    train::CallbackState& state = states[cb->name()];
    state.json = nlohmann::ordered_json::parse(json["methods"][cb->name()].dump());
    cb->load_state(state);
  }
  info_.step = json["step"].get<int64_t>();
  // As the Trainer resumes: the methods start again at the restored step.
  if (json.value("started", false)) start();
}

CompressionSession::~CompressionSession() = default;

std::vector<at::Tensor> CompressionSession::parameters() const {
  std::vector<at::Tensor> out;
  for (const auto& [name, tensor] : parameters_) out.push_back(tensor);
  return out;
}

const std::vector<std::pair<std::string, at::Tensor>>& CompressionSession::named_parameters()
    const {
  return parameters_;
}

void CompressionSession::require(bool ok, const char* call, const char* expected) const {
  STUNT_CHECK_AS(LifecycleError, ok, "CompressionSession::", call, " at step ", info_.step, ": ",
                 phase_ == Phase::Finalized ? "the session is finalized" : expected);
}

std::optional<double> CompressionSession::learning_rate() const {
  std::optional<double> rate;
  for (train::TrainingCallbacks* cb : callbacks_) {
    if (auto r = cb->learning_rate(info_)) rate = r;
  }
  return rate;
}

void CompressionSession::batch_start() {
  require(phase_ == Phase::BetweenSteps, "batch_start",
          "the previous step has not ended; call optimizer_post_step (or step) first");
  start();
  info_.epoch = prune::epoch_after_steps(info_.step, info_.steps_per_epoch);
  if (auto rate = learning_rate()) info_.learning_rate = *rate;
  for (train::TrainingCallbacks* cb : callbacks_) cb->on_batch_start(info_);
  phase_ = Phase::InStep;
}

at::Tensor CompressionSession::loss(const at::Tensor& loss) {
  require(!distils_, "loss",
          "the recipe distils, which reads the batch and the student's output: call "
          "loss(l, batch, output)");
  return this->loss(loss, train::TrainingBatch{}, model::Output{});
}

at::Tensor CompressionSession::loss(const at::Tensor& loss, const train::TrainingBatch& batch,
                                    const model::Output& output) {
  require(phase_ == Phase::InStep, "loss", "call batch_start before the step's forward");
  at::Tensor out = loss;
  for (train::TrainingCallbacks* cb : callbacks_) cb->on_loss(info_, batch, output, out);
  return out;
}

void CompressionSession::optimizer_pre_step() {
  require(phase_ == Phase::InStep, "optimizer_pre_step",
          "call batch_start at the start of the step, and optimizer_pre_step once");
  train::densify_gradients(model_.state_dict());
  for (train::TrainingCallbacks* cb : callbacks_) cb->on_optimizer_pre_step(info_);
  phase_ = Phase::PreStepDone;
}

void CompressionSession::optimizer_post_step() {
  require(phase_ == Phase::PreStepDone, "optimizer_post_step",
          "call optimizer_pre_step before optimizer.step()");
  info_.step += 1;
  info_.epoch = prune::epoch_after_steps(info_.step, info_.steps_per_epoch);
  for (train::TrainingCallbacks* cb : callbacks_) cb->on_optimizer_post_step(info_);
  if (train::ProcessGroup* group = session_options_.process_group.get()) {
    for (train::TrainingCallbacks* cb : callbacks_) cb->synchronize(*group);
  }
  if (info_.step % info_.steps_per_epoch == 0) {
    for (train::TrainingCallbacks* cb : callbacks_) cb->on_epoch_end(info_);
  }
  phase_ = Phase::BetweenSteps;
}

void CompressionSession::step(torch::optim::Optimizer& optimizer) {
  if (auto rate = learning_rate()) {
    for (auto& group : optimizer.param_groups()) group.options().set_lr(*rate);
  }
  average_gradients(optimizer);
  optimizer_pre_step();
  optimizer.step();
  optimizer_post_step();
}

void CompressionSession::average_gradients(torch::optim::Optimizer& optimizer) {
  train::ProcessGroup* group = session_options_.process_group.get();
  if (group == nullptr) return;
  require(phase_ == Phase::InStep, "average_gradients",
          "average the gradients after backward() and before optimizer_pre_step");
  train::densify_gradients(model_.state_dict());  // sparse embedding gradients cannot be summed
  std::vector<at::Tensor> gradients;
  for (const auto& param_group : optimizer.param_groups()) {
    for (const at::Tensor& p : param_group.params()) {
      if (p.grad().defined()) gradients.push_back(p.grad());
    }
  }
  group->average(gradients);
}

std::map<std::string, double> CompressionSession::metrics() const {
  std::map<std::string, double> out;
  for (train::TrainingCallbacks* cb : callbacks_) cb->metrics(out);
  return out;
}

State& CompressionSession::finalize() {
  require(phase_ == Phase::BetweenSteps, "finalize",
          "a step is in progress; finish it with optimizer_post_step first");
  start();
  for (train::TrainingCallbacks* cb : callbacks_) cb->on_train_end(info_);
  c10::NoGradGuard no_grad;
  for (auto& m : modifiers_) m->finish(state_);
  if (auto* module = dynamic_cast<model::ModuleModel*>(&model_)) module->write_back();
  quant::apply_input_quantization(model_, state_.quantization);
  phase_ = Phase::Finalized;
  return state_;
}

void CompressionSession::save(const std::filesystem::path& folder,
                              OutputFolderOptions output) const {
  STUNT_CHECK_AS(LifecycleError, phase_ == Phase::Finalized,
                 "CompressionSession::save: call finalize() first, so that the saved weights are "
                 "the trained ones with their masks and scales");
  if (!writes()) return;
  AtomicDirectory out(folder, output);
  c10::NoGradGuard no_grad;
  if (const auto* hf = dynamic_cast<const model::HfModel*>(&model_)) {
    if (state_.quantization.empty()) {
      hf->save(out.staging());
    } else {
      quant::save_compressed(*hf, state_.quantization, out.staging());
    }
    out.commit();
    return;
  }
  nlohmann::ordered_json config;
  if (dynamic_cast<const model::ModuleModel*>(&model_) != nullptr) {
    config["architectures"] = {"StuntModuleModel"};
    config["model_type"] = "stunt-module";
  } else {
    config["architectures"] = {model_.architecture()};
  }
  if (state_.quantization.empty()) {
    model_.save(out.staging());
    out.commit();
    return;
  }
  const quant::CompressedState compressed = quant::compressed_state(model_, state_.quantization);
  std::vector<io::NamedTensor> tensors;
  for (const auto& [name, tensor] : compressed.tensors) tensors.emplace_back(name, tensor.detach());
  io::save_safetensors_sharded(out.staging(), tensors);
  config["quantization_config"] =
      quant::quantization_config(state_.quantization, compressed.unquantized);
  write_file_atomic(out.staging() / "config.json", config.dump(2) + "\n");
  out.commit();
}

}  // namespace stunt::recipe
