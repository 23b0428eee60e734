// One training step of a native model through Stunt's Trainer (forward with autograd, loss,
// backward, gradient clipping, AdamW): `--warmup` untimed and `--iters` timed steps on random
// token windows, then one JSON line with the median step time, tokens per second and the
// process's peak RSS. Causal language models train on next-token loss; BERT encoders as sentence
// encoders, on the squared error of their pooled embeddings against random targets.
// With `--distill-keep N` the step is a distillation step: the student keeps N evenly spaced
// layers of the model (recipe LayerPruningModifier keep_layers), the whole model is the teacher,
// run without autograd on the same batch, and the recipe's DistillationModifier mixes the losses
// (hardness 0.5, temperature 2.0: SparseML's defaults).
// benchmarks/train_step_speed.py runs it beside the same step written in PyTorch eager.
//
//   stunt_train_bench MODEL_DIR|MODEL.gguf [--batch 4] [--seq 128] [--threads N]
//                     [--warmup 2] [--iters 10] [--seed 0] [--profile TRACE.json]
//                     [--distill-keep N]
//
// `--profile` records the last step with the autograd profiler as a Chrome trace, to see which
// operators a step spends its time in.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <fstream>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "bench_util.h"
#include "stunt/model/hf_model.h"
#include "stunt/prune/structure.h"
#include "stunt/recipe/modifier.h"
#include "stunt/recipe/training.h"
#include "stunt/train/sentence_embedding.h"
#include "stunt/train/trainer.h"
#include "torch/csrc/autograd/profiler_legacy.h"

namespace {

struct BenchOptions {
  std::string model;
  int64_t batch = 4;
  int64_t seq = 128;
  int threads = static_cast<int>(std::max(1U, std::thread::hardware_concurrency()));
  int warmup = 2;
  int iters = 10;
  uint64_t seed = 0;
  std::string profile;
  int64_t distill_keep = 0;
};

/// The peak resident set of this process (VmHWM), in MiB.
double peak_rss_mib() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  }
  return 0.0;
}

/// Times every optimizer step, from the batch's start to the end of the optimizer's step.
/// With a trace path, the step numbered `profiled_step` is recorded by the autograd profiler.
class StepTimer : public stunt::train::TrainingCallbacks {
 public:
  StepTimer(std::string trace, int64_t profiled_step)
      : trace_(std::move(trace)), profiled_step_(profiled_step) {}
  std::string name() const override { return "timer"; }
  void on_batch_start(const stunt::train::StepInfo& step) override {
    if (!trace_.empty() && step.step == profiled_step_) {
      profile_ = std::make_unique<torch::autograd::profiler::RecordProfile>(trace_);
    }
    start_ = std::chrono::steady_clock::now();
  }
  void on_optimizer_post_step(const stunt::train::StepInfo&) override {
    milliseconds.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start_)
            .count());
    profile_.reset();
  }
  std::vector<double> milliseconds;

 private:
  std::string trace_;
  int64_t profiled_step_;
  std::unique_ptr<torch::autograd::profiler::RecordProfile> profile_;
  std::chrono::steady_clock::time_point start_;
};

int run(const BenchOptions& options) {
  at::set_num_threads(options.threads);
  const std::filesystem::path source = options.model;
  auto load = [&] {
    return source.extension() == ".gguf" ? stunt::model::load_gguf_model(source)
                                         : stunt::model::load_hf_model(source);
  };
  std::unique_ptr<stunt::model::HfModel> model = load();
  // Distillation: the loaded model is the teacher; the student, loaded on its own (no tensor
  // shared with the teacher), keeps distill_keep evenly spaced layers.
  std::unique_ptr<stunt::model::HfModel> teacher;
  std::unique_ptr<stunt::recipe::TrainingModifier> distillation;
  if (options.distill_keep > 0) {
    teacher = std::move(model);
    const std::unique_ptr<stunt::model::HfModel> whole = load();
    const stunt::model::BlockStack stack = stunt::prune::structure_layout(*whole).stacks.at(0);
    // numpy's linspace(0, count - 1, keep) as integers, as keep_layers picks.
    std::set<int64_t> kept = {stack.count - 1};
    const double spacing =
        static_cast<double>(stack.count - 1) / static_cast<double>(options.distill_keep - 1);
    for (int64_t k = 0; k + 1 < options.distill_keep; ++k) {
      kept.insert(static_cast<int64_t>(static_cast<double>(k) * spacing));
    }
    std::vector<int64_t> drop;
    for (int64_t i = 0; i < stack.count; ++i) {
      if (kept.count(i) == 0) drop.push_back(i);
    }
    model = stunt::prune::drop_blocks(*whole, stack.name, drop, "--distill-keep");
    stunt::recipe::ModifierSpec spec{"DistillationModifier", "distill",
                                     "bench.distill_modifiers.DistillationModifier",
                                     stunt::recipe::Value{{"hardness", 0.5}, {"temperature", 2.0}}};
    distillation =
        stunt::recipe::make_training_modifier(spec, stunt::recipe::RecipeSyntax::SparseML);
    stunt::recipe::State state;
    state.model = model.get();
    state.teacher = teacher.get();
    distillation->resolve(state);
  }
  const int64_t vocab = model->config().integer("vocab_size");
  const int steps = options.warmup + options.iters;

  auto generator = at::make_generator<at::CPUGeneratorImpl>(options.seed);
  const at::Tensor ids =
      at::randint(vocab, {options.batch * steps, options.seq}, generator, at::kLong);
  std::vector<std::vector<int64_t>> windows;
  for (int64_t r = 0; r < ids.size(0); ++r) {
    const int64_t* row = ids.data_ptr<int64_t>() + r * options.seq;
    windows.emplace_back(row, row + options.seq);
  }
  std::unique_ptr<stunt::train::TrainingData> data;
  stunt::train::LossFunction loss = stunt::train::causal_lm_loss;
  if (model->architecture() == "bert") {
    // Targets drawn after the ids, from the same generator: the eager side draws them alike.
    const int64_t width = model->config().integer("hidden_size");
    const at::Tensor targets = at::randn({options.batch * steps, width}, generator, at::kFloat);
    std::vector<stunt::train::EmbeddingExample> examples;
    for (int64_t r = 0; r < ids.size(0); ++r) {
      stunt::train::EmbeddingExample e;
      e.text = windows[static_cast<size_t>(r)];
      const float* t = targets.data_ptr<float>() + r * width;
      e.target.assign(t, t + width);
      examples.push_back(std::move(e));
    }
    data = std::make_unique<stunt::train::SentenceEmbeddingData>(std::move(examples), 0, "random",
                                                                 "random windows");
    const auto pooling = stunt::model::SentencePooling::from_folder(source);
    loss = [pooling](stunt::model::Model& m, const stunt::train::TrainingBatch& b) {
      return stunt::train::sentence_embedding_loss(m, b, pooling);
    };
  } else {
    data = std::make_unique<stunt::train::TokenWindowData>(std::move(windows), "random windows");
  }

  stunt::train::TrainerOptions trainer;
  trainer.batch_size = options.batch;
  trainer.max_steps = steps;
  trainer.learning_rate.peak = 1e-5;
  trainer.max_grad_norm = 1.0;
  trainer.log_every = 0;
  stunt::train::Trainer run(*model, *data, loss, trainer);
  StepTimer timer(options.profile, steps - 1);
  if (distillation) {
    for (stunt::train::TrainingCallbacks* cb : distillation->callbacks()) run.add_callbacks(*cb);
  }
  run.add_callbacks(timer);
  run.run();

  const double median = stunt::bench::median(
      std::vector<double>(timer.milliseconds.begin() + options.warmup, timer.milliseconds.end()));
  const nlohmann::json result = {
      {"tool", "stunt"},
      {"model", options.model},
      {"architecture", model->architecture()},
      {"distill_keep", options.distill_keep},
      {"batch", options.batch},
      {"seq", options.seq},
      {"threads", options.threads},
      {"iters", options.iters},
      {"median_step_ms", median},
      {"tokens_per_s", static_cast<double>(options.batch * options.seq) / (median / 1000.0)},
      {"peak_rss_mib", peak_rss_mib()}};
  std::cout << result.dump() << std::endl;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"One training step of a native model through Stunt's Trainer"};
  BenchOptions options;
  app.add_option("MODEL", options.model, "Hugging Face folder or .gguf file")->required();
  app.add_option("--batch", options.batch, "Windows per step")->capture_default_str();
  app.add_option("--seq", options.seq, "Tokens per window")->capture_default_str();
  app.add_option("--threads", options.threads, "Intra-op threads")->capture_default_str();
  app.add_option("--warmup", options.warmup, "Untimed steps")->capture_default_str();
  app.add_option("--iters", options.iters, "Timed steps")->capture_default_str();
  app.add_option("--seed", options.seed, "Seed of the token ids")->capture_default_str();
  app.add_option("--distill-keep", options.distill_keep,
                 "A distillation step: the student keeps this many evenly spaced layers, the "
                 "whole model teaches (0: plain training)");
  app.add_option("--profile", options.profile,
                 "Write the last step's operators as a Chrome trace to this file");
  CLI11_PARSE(app, argc, argv);
  try {
    return run(options);
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}
