// compress eval: perplexity, fidelity to a reference, or accuracy of a model on a dataset.
#include <ATen/Parallel.h>

#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "kernel_options.h"
#include "stunt/core/error.h"
#include "stunt/core/logging.h"
#include "stunt/core/progress.h"
#include "stunt/io/dataset.h"
#include "stunt/model/evaluate.h"
#include "stunt/model/load.h"
#include "stunt/quant/compressed_tensors.h"

namespace compress {

namespace {

struct EvalCommand {
  std::string model;
  std::string metric = "perplexity";
  std::string data;
  std::string reference;
  std::string tokenizer;
  int64_t seq_len = 2048;
  int64_t max_samples = -1;
  int64_t batch_size = 8;
  int threads = 0;
  bool no_special_tokens = false;
  bool json = false;
  KernelOptions kernels;
};

stunt::model::EvalOptions progress_options(stunt::Progress& progress, int64_t batch_size) {
  stunt::model::EvalOptions options;
  options.batch_size = batch_size;
  options.progress = [&progress](int64_t done, int64_t) {
    progress.advance(done - progress.done());
  };
  return options;
}

int64_t pad_id_of(const stunt::io::Tokenizer& tokenizer) {
  if (auto id = tokenizer.pad_id()) return *id;
  if (auto id = tokenizer.eos_id()) return *id;
  return 0;  // padded positions are masked out; any valid id will do
}

int run_eval(const EvalCommand& c) {
  namespace model = stunt::model;
  if (c.threads > 0) at::set_num_threads(c.threads);
  const std::string tokenizer_path = c.tokenizer.empty() ? c.model : c.tokenizer;
  const stunt::io::Tokenizer tokenizer = model::load_model_tokenizer(tokenizer_path);
  stunt::io::DatasetOptions data_options;
  data_options.add_special_tokens = !c.no_special_tokens;
  auto lm = c.kernels.load(c.model);
  nlohmann::json report = {{"model", c.model}, {"metric", c.metric}, {"data", c.data}};

  if (c.metric == "perplexity") {
    std::vector<std::vector<int64_t>> windows;
    {
      auto reader = stunt::io::TokenWindows::open(c.data, tokenizer, c.seq_len, data_options);
      stunt::Progress reading("tokenizing", static_cast<int64_t>(reader.size_bytes() >> 10),
                              {.unit = "KiB"});
      while (auto window = reader.next()) {
        windows.push_back(std::move(*window));
        reading.advance(static_cast<int64_t>(reader.bytes_read() >> 10) - reading.done());
        if (c.max_samples > 0 && static_cast<int64_t>(windows.size()) >= c.max_samples) break;
      }
    }
    STUNT_CHECK(!windows.empty(), c.data, " holds fewer than --seq-len ", c.seq_len,
                " tokens; pass a smaller --seq-len");
    stunt::Progress progress("perplexity", static_cast<int64_t>(windows.size()),
                             {.unit = "windows"});
    const auto result = model::perplexity(*lm, windows, progress_options(progress, c.batch_size));
    progress.finish();
    report.update({{"perplexity", result.perplexity},
                   {"nll", result.nll},
                   {"tokens", result.tokens},
                   {"windows", result.windows},
                   {"seq_len", c.seq_len}});
  } else {
    data_options.max_length = c.seq_len;
    auto dataset = stunt::io::TextDataset::open(c.data, tokenizer, data_options);
    std::vector<stunt::io::Sample> samples = dataset.read(c.max_samples);
    STUNT_CHECK(!samples.empty(), c.data, " holds no samples");
    std::vector<std::vector<int64_t>> ids;
    std::vector<int64_t> labels;
    for (auto& sample : samples) {
      ids.push_back(std::move(sample.input_ids));
      if (c.metric == "accuracy") {
        STUNT_CHECK(sample.label.has_value(), c.data, ":", sample.line,
                    ": no \"label\"; --metric accuracy needs a label on every JSONL record");
        labels.push_back(*sample.label);
      }
    }
    stunt::Progress progress(c.metric, static_cast<int64_t>(ids.size()), {.unit = "samples"});
    const auto options = progress_options(progress, c.batch_size);
    if (c.metric == "fidelity") {
      STUNT_CHECK(!c.reference.empty(),
                  "--metric fidelity needs --reference MODEL0, the model to compare against");
      auto reference = stunt::quant::load_model(c.reference);
      const auto pooling = std::filesystem::is_directory(c.model)
                               ? model::SentencePooling::from_folder(c.model)
                               : model::SentencePooling{};
      const auto result =
          model::fidelity(*lm, *reference, ids, pad_id_of(tokenizer), pooling, options);
      report.update({{"reference", c.reference},
                     {"measure", result.measure},
                     {"mean", result.mean},
                     {"worst", result.worst},
                     {"samples", result.samples}});
    } else {
      const auto result = model::accuracy(*lm, ids, labels, pad_id_of(tokenizer), options);
      report.update(
          {{"accuracy", result.accuracy}, {"correct", result.correct}, {"total", result.total}});
    }
    progress.finish();
  }

  if (c.json) {
    std::cout << report.dump(2) << "\n";
    return 0;
  }
  std::cout << std::setprecision(6);
  if (c.metric == "perplexity") {
    std::cout << "perplexity " << report["perplexity"].get<double>() << " over " << report["tokens"]
              << " predicted tokens in " << report["windows"] << " windows of " << c.seq_len
              << "\n";
  } else if (c.metric == "fidelity") {
    const bool cosine = report["measure"] == "cosine";
    std::cout << (cosine ? "cosine similarity" : "KL divergence (nats/token)") << ": mean "
              << report["mean"].get<double>() << ", worst " << report["worst"].get<double>()
              << " over " << report["samples"] << " samples\n";
  } else {
    std::cout << "accuracy " << report["accuracy"].get<double>() << " (" << report["correct"]
              << " of " << report["total"] << ")\n";
  }
  return 0;
}

}  // namespace

Runner add_eval(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "eval", "Measure a model on a dataset: perplexity, fidelity to a reference, or accuracy");
  auto c = std::make_shared<EvalCommand>();
  cmd->add_option("MODEL", c->model, "Hugging Face folder or .gguf file")->required();
  cmd->add_option("--metric", c->metric,
                  "perplexity (causal LM, GPTQ style), fidelity (against --reference), or "
                  "accuracy (classifier, JSONL with labels)")
      ->check(CLI::IsMember({"perplexity", "fidelity", "accuracy"}))
      ->capture_default_str();
  cmd->add_option("--data", c->data,
                  "Text file (one sample per line; perplexity joins the lines) or JSONL with "
                  "\"text\" or \"input_ids\" (and \"label\")")
      ->required();
  cmd->add_option("--reference", c->reference, "The model to compare with (fidelity)");
  cmd->add_option("--tokenizer", c->tokenizer,
                  "Tokenizer file or folder (default: the model's own)");
  cmd->add_option("--seq-len", c->seq_len,
                  "Window length for perplexity; longer samples are truncated to it otherwise")
      ->check(CLI::Range(int64_t{2}, int64_t{1} << 20))
      ->capture_default_str();
  cmd->add_option("--max-samples", c->max_samples,
                  "Use at most this many windows or samples (default: all)");
  cmd->add_option("--batch-size", c->batch_size, "Samples per forward pass")
      ->check(CLI::Range(int64_t{1}, int64_t{4096}))
      ->capture_default_str();
  cmd->add_option("--threads", c->threads, "CPU threads (default: LibTorch's choice)");
  cmd->add_flag("--no-special-tokens", c->no_special_tokens,
                "Do not add the tokenizer's special tokens (BOS, [CLS] ... [SEP])");
  c->kernels.add_to(cmd);
  cmd->add_flag("--json", c->json, "Print the result as JSON");
  return [c] { return run_eval(*c); };
}

}  // namespace compress
