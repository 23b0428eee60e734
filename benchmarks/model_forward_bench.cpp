// Forward throughput of a native model: loads a Hugging Face folder or a .gguf file, runs
// `--warmup` untimed and `--iters` timed forward passes on random token ids, and prints one JSON
// line. benchmarks/model_throughput.py runs it beside Python transformers on the same folder.
//
//   stunt_model_bench MODEL_DIR|MODEL.gguf [--batch 8] [--seq 128] [--threads N]
//                     [--warmup 2] [--iters 10] [--seed 0] [--profile TRACE]
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <torch/csrc/autograd/profiler_legacy.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <iostream>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "bench_util.h"
#include "stunt/model/hf_model.h"

namespace {

struct BenchOptions {
  std::string model;
  int64_t batch = 8;
  int64_t seq = 128;
  int threads = static_cast<int>(std::max(1U, std::thread::hardware_concurrency()));
  int warmup = 2;
  int iters = 10;
  uint64_t seed = 0;
  std::string profile;
};

using stunt::bench::median;

int run(const BenchOptions& options) {
  at::set_num_threads(options.threads);
  const std::filesystem::path source = options.model;
  const std::unique_ptr<stunt::model::HfModel> model = source.extension() == ".gguf"
                                                           ? stunt::model::load_gguf_model(source)
                                                           : stunt::model::load_hf_model(source);
  const int64_t vocab = model->config().integer("vocab_size");

  auto generator = at::make_generator<at::CPUGeneratorImpl>(options.seed);
  stunt::model::Batch batch;
  batch.input_ids = at::randint(vocab, {options.batch, options.seq}, generator, at::kLong);
  if (model->architecture() == "t5") {
    batch.decoder_input_ids =
        at::randint(vocab, {options.batch, options.seq}, generator, at::kLong);
  }

  c10::InferenceMode inference_mode;
  for (int i = 0; i < options.warmup; ++i) model->forward(batch);
  std::vector<double> times_ms;
  times_ms.reserve(options.iters);
  for (int i = 0; i < options.iters; ++i) {
    const auto start = std::chrono::steady_clock::now();
    const stunt::model::Output output = model->forward(batch);
    const auto stop = std::chrono::steady_clock::now();
    times_ms.push_back(std::chrono::duration<double, std::milli>(stop - start).count());
  }
  if (!options.profile.empty()) {
    // One more forward, traced op by op (chrome://tracing format).
    torch::autograd::profiler::RecordProfile trace(options.profile);
    model->forward(batch);
  }
  const double median_ms = median(times_ms);
  const nlohmann::ordered_json line = {
      {"model", options.model},
      {"architecture", model->architecture()},
      {"batch", options.batch},
      {"seq", options.seq},
      {"threads", at::get_num_threads()},
      {"warmup", options.warmup},
      {"iters", options.iters},
      {"median_ms", median_ms},
      {"min_ms", *std::min_element(times_ms.begin(), times_ms.end())},
      {"tokens_per_s", static_cast<double>(options.batch * options.seq) / (median_ms / 1000.0)},
  };
  std::cout << line.dump() << std::endl;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Forward throughput of a Stunt native model; prints one JSON line"};
  BenchOptions options;
  app.add_option("MODEL", options.model, "Hugging Face folder or .gguf file")->required();
  app.add_option("--batch", options.batch, "Sequences per forward")->check(CLI::PositiveNumber);
  app.add_option("--seq", options.seq, "Tokens per sequence")->check(CLI::PositiveNumber);
  app.add_option("--threads", options.threads, "Intra-op threads (default: hardware threads)")
      ->check(CLI::PositiveNumber);
  app.add_option("--warmup", options.warmup, "Untimed forwards first")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--iters", options.iters, "Timed forwards")->check(CLI::PositiveNumber);
  app.add_option("--seed", options.seed, "Seed of the random input ids");
  app.add_option("--profile", options.profile,
                 "After timing, trace one more forward op by op into this file (chrome trace)");
  CLI11_PARSE(app, argc, argv);
  try {
    return run(options);
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}
