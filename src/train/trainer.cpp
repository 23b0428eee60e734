#include "stunt/train/trainer.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/GradMode.h>
#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/adamw.h>
#include <torch/optim/sgd.h>

#include <chrono>
#include <cmath>
#include <fstream>
#include <mutex>

#include "detail/signal_stop.h"
#include "detail/training_checkpoint.h"
#include "stunt/core/error.h"
#include "stunt/core/logging.h"
#include "stunt/core/progress.h"
#include "stunt/prune/gradual_schedule.h"
#include "stunt/train/cross_entropy.h"
#include "stunt/train/fused_adamw.h"

namespace stunt::train {
namespace {

/// splitmix64 (Steele et al. 2014): a fixed, portable stream for the example order.
uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

/// An index uniformly below `bound` (Lemire's multiply-shift, with its rejection step).
uint64_t below(uint64_t bound, uint64_t& state) {
  const uint64_t threshold = (0 - bound) % bound;
  while (true) {
    const unsigned __int128 product =
        static_cast<unsigned __int128>(splitmix64(state)) * static_cast<unsigned __int128>(bound);
    if (static_cast<uint64_t>(product) >= threshold) return static_cast<uint64_t>(product >> 64);
  }
}

/// The trainer's own state in a checkpoint, beside the callbacks': dropout's random stream.
constexpr const char* kTrainerState = "stunt.trainer";

at::Tensor cpu_generator_state() {
  at::Generator generator = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(generator.mutex());
  return generator.get_state();
}

void set_cpu_generator_state(const at::Tensor& state) {
  at::Generator generator = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(generator.mutex());
  generator.set_state(state);
}

/// Puts the model in training mode for a scope, and back as it was.
class TrainingMode {
 public:
  explicit TrainingMode(model::Model& model) : model_(model), previous_(model.training()) {
    model_.set_training(true);
  }
  ~TrainingMode() { model_.set_training(previous_); }
  TrainingMode(const TrainingMode&) = delete;
  TrainingMode& operator=(const TrainingMode&) = delete;

 private:
  model::Model& model_;
  bool previous_;
};

}  // namespace

std::vector<int64_t> epoch_order(int64_t size, uint64_t seed, int64_t epoch) {
  std::vector<int64_t> order(static_cast<size_t>(size));
  for (int64_t i = 0; i < size; ++i) order[static_cast<size_t>(i)] = i;
  uint64_t state = seed ^ (0xD1B54A32D192ED03ULL * static_cast<uint64_t>(epoch + 1));
  for (int64_t i = size - 1; i > 0; --i) {
    const auto j = static_cast<int64_t>(below(static_cast<uint64_t>(i + 1), state));
    std::swap(order[static_cast<size_t>(i)], order[static_cast<size_t>(j)]);
  }
  return order;
}

TokenWindowData::TokenWindowData(std::vector<std::vector<int64_t>> windows, std::string fingerprint)
    : windows_(std::move(windows)), fingerprint_(std::move(fingerprint)) {
  for (const auto& w : windows_) {
    STUNT_CHECK_AS(ValueError, w.size() == windows_.front().size() && w.size() >= 2,
                   "training windows must share one length of at least 2 tokens (", fingerprint_,
                   ")");
  }
}

TrainingBatch TokenWindowData::batch(const std::vector<int64_t>& examples) const {
  const int64_t seq = static_cast<int64_t>(windows_.front().size());
  at::Tensor ids = at::empty({static_cast<int64_t>(examples.size()), seq}, at::kLong);
  int64_t* out = ids.data_ptr<int64_t>();
  for (size_t i = 0; i < examples.size(); ++i) {
    const auto& w = windows_.at(static_cast<size_t>(examples[i]));
    std::copy(w.begin(), w.end(), out + static_cast<int64_t>(i) * seq);
  }
  TrainingBatch batch;
  batch.inputs.input_ids = ids;
  batch.labels = ids;
  return batch;
}

TaskLoss causal_lm_loss(model::Model& model, const TrainingBatch& batch) {
  STUNT_CHECK_AS(ValueError, model.architecture() != "t5", model.architecture(),
                 ": encoder-decoder models train on (input, target) pairs (--task seq2seq); "
                 "causal language modelling trains decoder-only models");
  const model::Output out = model.forward_with_grad(batch.inputs);
  STUNT_CHECK_AS(
      ValueError,
      out.logits.defined() && out.logits.dim() == 3 && out.logits.size(1) == batch.labels.size(1),
      model.architecture(),
      " gives no next-token logits [batch, seq, vocab]: causal language modelling "
      "needs a language model (Llama, Mistral, Qwen2, GPT-2), not an encoder");
  // The labels move left (the last position predicts nothing) rather than the logits, as
  // transformers' loss does: no copy of the [batch, seq, vocab] logits.
  const int64_t rows = batch.labels.size(0);
  const at::Tensor labels = at::cat({batch.labels.narrow(1, 1, batch.labels.size(1) - 1),
                                     at::full({rows, 1}, -100, batch.labels.options())},
                                    1);
  const at::Tensor logits = out.logits.to(at::kFloat);
  return {token_cross_entropy(logits.reshape({-1, logits.size(-1)}), labels.reshape({-1})), out};
}

void densify_gradients(const std::vector<std::pair<std::string, at::Tensor>>& parameters) {
  for (const auto& [name, p] : parameters) {
    if (p.grad().defined() && p.grad().is_sparse()) {
      p.mutable_grad() = p.grad().to_dense();
    }
  }
}

const char* to_string(OptimizerKind kind) { return kind == OptimizerKind::AdamW ? "adamw" : "sgd"; }

struct Trainer::Impl {
  model::Model& model;
  const TrainingData& data;
  LossFunction loss;
  TrainerOptions options;
  std::vector<TrainingCallbacks*> callbacks;
  /// The model's trainable tensors, then those the callbacks add (learned scales).
  std::vector<std::pair<std::string, at::Tensor>> parameters;
  size_t model_parameters = 0;
  std::unique_ptr<torch::optim::Optimizer> optimizer;

  Impl(model::Model& m, const TrainingData& d, LossFunction l, TrainerOptions o)
      : model(m), data(d), loss(std::move(l)), options(std::move(o)) {}

  ProcessGroup* group() const { return options.process_group.get(); }
  int world_size() const { return group() ? group()->world_size() : 1; }
  int rank() const { return group() ? group()->rank() : 0; }

  int64_t examples_per_step() const {
    return options.batch_size * options.gradient_accumulation * world_size();
  }

  int64_t steps_per_epoch() const {
    STUNT_CHECK_AS(ValueError, options.batch_size > 0 && options.gradient_accumulation > 0,
                   "batch size (", options.batch_size, ") and gradient accumulation (",
                   options.gradient_accumulation, ") must be at least 1");
    const int64_t steps = data.size() / examples_per_step();
    STUNT_CHECK_AS(ValueError, steps > 0, "the training data (", data.fingerprint(), ") holds ",
                   data.size(), " examples, fewer than one optimizer step takes (batch size ",
                   options.batch_size, " x gradient accumulation ", options.gradient_accumulation,
                   " x ranks ", world_size(), " = ", examples_per_step(),
                   "); give more data or a smaller batch");
    return steps;
  }

  int64_t total_steps() const {
    if (options.max_steps > 0) return options.max_steps;
    STUNT_CHECK_AS(ValueError, std::isfinite(options.epochs) && options.epochs > 0,
                   "the number of epochs (", options.epochs, ") must be above 0");
    // A fraction of an epoch rounds up to whole steps; 1e-9 keeps 3 * (1/3) at 1.
    return static_cast<int64_t>(std::ceil(options.epochs * steps_per_epoch() - 1e-9));
  }

  void make_optimizer() {
    std::vector<at::Tensor> tensors;
    for (const auto& [name, t] : parameters) tensors.push_back(t);
    const OptimizerOptions& o = options.optimizer;
    if (o.kind == OptimizerKind::AdamW) {
      const auto adamw = torch::optim::AdamWOptions(options.learning_rate.peak)
                             .betas({o.beta1, o.beta2})
                             .eps(o.eps)
                             .weight_decay(o.weight_decay);
      if (o.fused) {
        optimizer = std::make_unique<FusedAdamW>(tensors, adamw);
      } else {
        optimizer = std::make_unique<torch::optim::AdamW>(tensors, adamw);
      }
    } else {
      optimizer = std::make_unique<torch::optim::SGD>(
          tensors, torch::optim::SGDOptions(options.learning_rate.peak)
                       .momentum(o.momentum)
                       .nesterov(o.nesterov)
                       .weight_decay(o.weight_decay));
    }
  }

  void set_learning_rate(double rate) {
    for (auto& group : optimizer->param_groups()) group.options().set_lr(rate);
  }

  detail::CheckpointIdentity identity(int64_t spe, int64_t total) const {
    return {options.run_fingerprint,           data.fingerprint(), spe, total,
            to_string(options.optimizer.kind), world_size()};
  }

  /// The key of this rank's dropout stream in the trainer's checkpoint state.
  static std::string rng_key(int rank) {
    return rank == 0 ? std::string("cpu_rng") : str("cpu_rng.rank", rank);
  }

  /// Collective in data-parallel runs: every rank calls it at the same steps; rank 0 writes.
  void write_checkpoint(const StepInfo& info) {
    if (options.checkpoint_dir.empty()) return;
    c10::NoGradGuard no_grad;
    std::vector<at::Tensor> rng_states{cpu_generator_state()};
    if (group()) rng_states = group()->all_gather(rng_states.front());
    if (rank() != 0) return;
    detail::CheckpointContents contents;
    contents.step = info.step;
    contents.identity = identity(info.steps_per_epoch, info.total_steps);
    contents.parameters = &parameters;
    contents.optimizer = optimizer.get();
    for (TrainingCallbacks* cb : callbacks) cb->save_state(contents.callbacks[cb->name()]);
    for (size_t r = 0; r < rng_states.size(); ++r) {
      contents.callbacks[kTrainerState].tensors[rng_key(static_cast<int>(r))] = rng_states[r];
    }
    detail::write_training_checkpoint(options.checkpoint_dir, contents, options.keep_checkpoints);
  }

  /// Restores the newest checkpoint; returns its step (0 when there is none).
  int64_t restore(int64_t spe, int64_t total) {
    if (options.checkpoint_dir.empty()) return 0;
    if (!options.resume) {
      // A fresh run would interleave its checkpoints with an earlier run's.
      const auto earlier = detail::list_training_checkpoints(options.checkpoint_dir);
      STUNT_CHECK_AS(ValueError, earlier.empty(), options.checkpoint_dir.string(),
                     " holds checkpoints of an earlier run (up to step ", earlier.back().first,
                     "); resume it, or remove the folder to start over");
      return 0;
    }
    std::map<std::string, CallbackState> states;
    const std::optional<int64_t> step = detail::read_training_checkpoint(
        options.checkpoint_dir, identity(spe, total), parameters, *optimizer, states);
    if (!step) return 0;
    const auto trainer_state = states.find(kTrainerState);
    STUNT_CHECK_AS(
        FormatError,
        trainer_state != states.end() && trainer_state->second.tensors.count(rng_key(rank())),
        options.checkpoint_dir.string(), ": the checkpoint holds no random state");
    set_cpu_generator_state(trainer_state->second.tensors.at(rng_key(rank())));
    for (TrainingCallbacks* cb : callbacks) {
      auto it = states.find(cb->name());
      STUNT_CHECK_AS(ValueError, it != states.end(), options.checkpoint_dir.string(),
                     ": the checkpoint holds no state for '", cb->name(),
                     "'; it was written by another recipe. Start over without resume");
      cb->load_state(it->second);
    }
    return *step;
  }

  /// The evaluation's results, in evaluation mode and without autograd; rank 0 only.
  std::map<std::string, double> evaluate(const StepInfo& info) {
    if (!options.evaluate || rank() != 0) return {};
    c10::NoGradGuard no_grad;
    model.set_training(false);
    std::map<std::string, double> results = options.evaluate(model);
    model.set_training(true);
    std::string line;
    for (const auto& [name, value] : results) line += str(" ", name, " ", value);
    log::info("step ", info.step, " evaluation:", line);
    return results;
  }

  void write_metrics(const StepInfo& info, double tokens_per_s,
                     const std::map<std::string, double>& evaluation) {
    if (options.metrics_file.empty() || rank() != 0) return;
    nlohmann::ordered_json line = {{"step", info.step},
                                   {"epoch", info.epoch},
                                   {"loss", info.loss},
                                   {"learning_rate", info.learning_rate},
                                   {"tokens_per_s", tokens_per_s}};
    std::map<std::string, double> extra;
    for (TrainingCallbacks* cb : callbacks) cb->metrics(extra);
    for (const auto& [k, v] : extra) line[k] = v;
    for (const auto& [k, v] : evaluation) line["eval_" + k] = v;
    std::ofstream out(options.metrics_file, std::ios::app);
    out << line.dump() << '\n';
    STUNT_CHECK_AS(IoError, out.good(), options.metrics_file.string(),
                   ": cannot append the metrics line");
  }
};

Trainer::Trainer(model::Model& model, const TrainingData& data, LossFunction loss,
                 TrainerOptions options)
    : impl_(std::make_unique<Impl>(model, data, std::move(loss), std::move(options))) {
  impl_->parameters = model.prepare_training();
  impl_->model_parameters = impl_->parameters.size();
  STUNT_CHECK_AS(ValueError, !impl_->parameters.empty(), model.architecture(),
                 ": the model has no trainable tensors");
}

Trainer::~Trainer() = default;

void Trainer::add_callbacks(TrainingCallbacks& callbacks) {
  impl_->callbacks.push_back(&callbacks);
}

int64_t Trainer::steps_per_epoch() const { return impl_->steps_per_epoch(); }

int64_t Trainer::total_steps() const { return impl_->total_steps(); }

TrainResult Trainer::run() {
  Impl& t = *impl_;
  const auto started = std::chrono::steady_clock::now();
  const int64_t spe = t.steps_per_epoch();
  const int64_t total = t.total_steps();
  LearningRateSchedule schedule = t.options.learning_rate;
  schedule.total_steps = total;
  schedule.validate("training options");

  t.parameters.resize(t.model_parameters);
  for (TrainingCallbacks* cb : t.callbacks) {
    for (auto& named : cb->parameters()) t.parameters.push_back(std::move(named));
  }
  t.make_optimizer();

  // A fresh run seeds dropout's stream (one per rank, so that ranks drop different units); a
  // resumed one takes it from the checkpoint.
  at::manual_seed(t.options.seed + static_cast<uint64_t>(t.rank()));
  TrainingMode training_mode(t.model);
  TrainResult result;
  result.resumed_from = t.restore(spe, total);
  if (ProcessGroup* group = t.group()) {
    for (const at::Tensor& step :
         group->all_gather(at::full({1}, result.resumed_from, at::kLong))) {
      STUNT_CHECK_AS(ValueError, step.item<int64_t>() == result.resumed_from, "rank ", t.rank(),
                     " resumed from step ", result.resumed_from, " and another rank from step ",
                     step.item<int64_t>(), "; every rank must see the same checkpoint folder (",
                     t.options.checkpoint_dir.string(), ")");
    }
    // Ranks start from rank 0's tensors, as torch's DistributedDataParallel does.
    c10::NoGradGuard no_grad;
    std::vector<at::Tensor> tensors;
    for (const auto& [name, p] : t.parameters) tensors.push_back(p);
    group->broadcast(tensors);
  }
  if (result.resumed_from > 0) {
    log::info("resumed from step ", result.resumed_from, " of ", total, " (",
              t.options.checkpoint_dir.string(), ")");
  }
  StepInfo info;
  info.steps_per_epoch = spe;
  info.total_steps = total;
  info.step = result.resumed_from;
  info.epoch = prune::epoch_after_steps(info.step, spe);
  for (TrainingCallbacks* cb : t.callbacks) cb->on_train_start(info);

  detail::SignalStop stop;
  ProgressOptions progress_options{.unit = "steps"};
  if (t.rank() != 0) progress_options.mode = ProgressOptions::Mode::Silent;
  Progress progress("train", total, progress_options);
  progress.advance(info.step);
  const int64_t batch = t.options.batch_size;
  const int64_t accumulation = t.options.gradient_accumulation;
  const int64_t world = t.world_size();
  int64_t order_epoch = -1;
  std::vector<int64_t> order;
  int64_t tokens_since_log = 0;
  auto last_log = std::chrono::steady_clock::now();

  for (int64_t step = info.step; step < total; ++step) {
    const int64_t epoch = step / spe;
    if (epoch != order_epoch) {
      order = epoch_order(t.data.size(), t.options.seed, epoch);
      order_epoch = epoch;
    }
    info.step = step;
    info.epoch = prune::epoch_after_steps(step, spe);
    info.learning_rate = schedule.at(step);
    for (TrainingCallbacks* cb : t.callbacks) {
      if (auto rate = cb->learning_rate(info)) info.learning_rate = *rate;
    }
    t.set_learning_rate(info.learning_rate);
    for (TrainingCallbacks* cb : t.callbacks) cb->on_batch_start(info);

    t.optimizer->zero_grad();
    double loss_sum = 0.0;
    const int64_t first = (step % spe) * t.examples_per_step();
    for (int64_t micro = 0; micro < accumulation; ++micro) {
      const auto begin = order.begin() + first + (micro * world + t.rank()) * batch;
      const TrainingBatch b = t.data.batch(std::vector<int64_t>(begin, begin + batch));
      TaskLoss task = t.loss(t.model, b);
      at::Tensor loss = task.loss;
      for (TrainingCallbacks* cb : t.callbacks) cb->on_loss(info, b, task.output, loss);
      task.output = {};  // the graph lives on in `loss`; the outputs' memory need not
      STUNT_CHECK_AS(ValueError, std::isfinite(loss.item<double>()), "the loss at step ", step,
                     " is not finite (", loss.item<double>(),
                     "); lower the learning rate or check the data");
      (loss / static_cast<double>(accumulation)).backward();
      loss_sum += loss.item<double>();
      tokens_since_log += b.inputs.input_ids.numel() * world;
    }
    densify_gradients(t.parameters);
    if (ProcessGroup* group = t.group()) {
      std::vector<at::Tensor> gradients;
      for (const auto& [name, p] : t.parameters) {
        if (p.grad().defined()) gradients.push_back(p.grad());
      }
      group->average(gradients);
    }
    if (t.options.max_grad_norm > 0) {
      std::vector<at::Tensor> tensors;
      for (const auto& [name, p] : t.parameters) tensors.push_back(p);
      torch::nn::utils::clip_grad_norm_(tensors, t.options.max_grad_norm);
    }
    for (TrainingCallbacks* cb : t.callbacks) cb->on_optimizer_pre_step(info);
    t.optimizer->step();

    info.step = step + 1;
    info.epoch = prune::epoch_after_steps(info.step, spe);
    info.loss = loss_sum / static_cast<double>(accumulation);
    if (ProcessGroup* group = t.group()) {
      at::Tensor loss = at::full({1}, info.loss, at::kDouble);
      group->average({loss});
      info.loss = loss.item<double>();
    }
    for (TrainingCallbacks* cb : t.callbacks) cb->on_optimizer_post_step(info);
    // A signal may reach some ranks only, or at different moments: all stop at the same step.
    bool stop_now = stop.requested();
    if (ProcessGroup* group = t.group()) {
      for (TrainingCallbacks* cb : t.callbacks) cb->synchronize(*group);
      at::Tensor flag = at::full({1}, stop_now ? 1 : 0, at::kLong);
      group->sum({flag});
      stop_now = flag.item<int64_t>() > 0;
    }
    if (info.step % spe == 0) {
      for (TrainingCallbacks* cb : t.callbacks) cb->on_epoch_end(info);
    }
    progress.advance();

    std::map<std::string, double> evaluation;
    if (t.options.evaluate && (info.step == total || (t.options.eval_every > 0 &&
                                                      info.step % t.options.eval_every == 0))) {
      evaluation = t.evaluate(info);
      result.evaluation = evaluation;
    }
    if ((t.options.log_every > 0 && (info.step % t.options.log_every == 0 || info.step == total)) ||
        !evaluation.empty()) {
      const auto now = std::chrono::steady_clock::now();
      const double seconds = std::chrono::duration<double>(now - last_log).count();
      t.write_metrics(info, seconds > 0 ? tokens_since_log / seconds : 0.0, evaluation);
      tokens_since_log = 0;
      last_log = now;
    }
    const bool due = t.options.checkpoint_every > 0 && info.step % t.options.checkpoint_every == 0;
    if (stop_now) {
      t.write_checkpoint(info);
      log::info("stopped by ", stop.requested() ? stop.signal_name() : "another rank's signal",
                " after step ", info.step, "; rerun with resume ", "to continue from ",
                t.options.checkpoint_dir.string());
      result.interrupted = true;
      break;
    }
    if (due && info.step < total) t.write_checkpoint(info);
  }
  if (!result.interrupted) {
    t.write_checkpoint(info);
    for (TrainingCallbacks* cb : t.callbacks) cb->on_train_end(info);
  }
  progress.finish();
  // Gradients are not part of the result; later stages and saving need the memory.
  for (auto& [name, p] : t.parameters) p.mutable_grad().reset();
  result.steps = info.step;
  result.epochs = info.epoch;
  result.final_loss = info.loss;
  result.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return result;
}

}  // namespace stunt::train
