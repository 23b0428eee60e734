// The main form: compress --recipe RECIPE MODEL -o OUT.
#include <iostream>

#include "commands.h"
#include "stunt/core/atomic_file.h"
#include "stunt/core/error.h"
#include "stunt/core/logging.h"
#include "stunt/io/checkpoint.h"
#include "stunt/model/load.h"
#include "stunt/model/script_model.h"
#include "stunt/quant/compressed_tensors.h"
#include "stunt/quant/sparse_compressed.h"
#include "stunt/quant/torchscript_export.h"
#include "stunt/recipe/oneshot.h"
#include "stunt/recipe/recipe.h"
#include "stunt/recipe/registry.h"

namespace compress {

Runner add_compress(CLI::App& app) {
  struct Options {
    std::string recipe;
    std::string model;
    std::string output;
    std::string dataset;
    stunt::recipe::CalibrationOptions calibration;
    std::string target;
    std::string sparse_format = "dense";
    bool overwrite = false;
  };
  auto options = std::make_shared<Options>();
  app.add_option("--recipe", options->recipe, "Recipe to apply (JSON or YAML)");
  app.add_option("MODEL", options->model,
                 "Model: Hugging Face folder, .gguf file or TorchScript archive");
  app.add_option("-o,--output", options->output, "Output folder (written atomically)");
  app.add_option("--dataset", options->dataset,
                 "Calibration data: text or JSONL (random windows are drawn), or a .safetensors "
                 "file with input_ids [samples, tokens]");
  app.add_option("--num-samples", options->calibration.num_samples, "Calibration samples")
      ->capture_default_str();
  app.add_option("--seq-len", options->calibration.seq_len, "Tokens per calibration sample")
      ->capture_default_str();
  app.add_option("--seed", options->calibration.seed, "Seed for drawing calibration windows")
      ->capture_default_str();
  app.add_option("--calibration-batch-size", options->calibration.batch_size,
                 "Calibration samples per forward pass")
      ->capture_default_str();
  app.add_option("--target", options->target,
                 "Where the model will run; refuses what it cannot run (FP8 on Ampere)")
      ->check(CLI::IsMember({"cpu", "a10", "a100", "h100", "h200"}));
  app.add_option("--sparse-format", options->sparse_format,
                 "How pruned weights are stored: dense (zeros; loads everywhere), or the legacy "
                 "compressed-tensors sparse-bitmask / sparse-24-bitmask layouts (smaller files)")
      ->check(CLI::IsMember({"dense", "sparse-bitmask", "sparse-24-bitmask"}))
      ->capture_default_str();
  app.add_flag("--overwrite", options->overwrite, "Replace an existing output folder");
  return [options, &app]() -> int {
    if (options->recipe.empty() || options->model.empty() || options->output.empty()) {
      std::cerr << app.help() << "\nerror: the main form needs --recipe RECIPE, MODEL and -o OUT\n";
      return 2;
    }
    const auto recipe = stunt::recipe::load_recipe(options->recipe);
    const auto sparse_format = stunt::quant::parse_sparse_format(options->sparse_format);
    // The legacy sparse layouts store unquantized values: refuse before any work.
    if (const auto* spec = stunt::recipe::first_weight_quantizer(recipe);
        spec != nullptr && sparse_format != stunt::quant::SparseFormat::Dense) {
      throw stunt::ValueError(
          stunt::str("--sparse-format ", options->sparse_format, ": ", recipe.source, ": ",
                     spec->path, " (", spec->type,
                     ") quantizes the weights, and the sparse layouts store unquantized "
                     "values; drop --sparse-format (quantized outputs are packed already) or the "
                     "quantization"));
    }
    const std::filesystem::path model_path(options->model);
    bool torchscript = false;
    if (model_path.extension() != ".gguf") {
      // Damaged weights are reported by the reader that understands them, before anything else.
      const auto checkpoint = stunt::io::Checkpoint::open(model_path);
      torchscript = checkpoint->format() == stunt::io::CheckpointFormat::TorchScript;
      // A sound bare file still lacks the configuration the model engine needs.
      if (!torchscript && !std::filesystem::is_directory(model_path)) {
        throw stunt::ValueError(stunt::str(
            options->model, ": a bare ", stunt::io::format_name(checkpoint->format()),
            " checkpoint has no model configuration; `compress --recipe` runs on a Hugging Face "
            "folder (config.json + weights), a GGUF file or a TorchScript archive"));
      }
    }
    const bool tokenized = std::filesystem::path(options->dataset).extension() == ".safetensors";
    if (torchscript && !options->dataset.empty() && !tokenized) {
      throw stunt::ValueError(
          stunt::str(options->dataset,
                     ": a TorchScript archive carries no tokenizer to read text with; give "
                     "--dataset a .safetensors file holding input_ids [samples, tokens]"));
    }
    // Fail before any work when the output cannot be written.
    stunt::AtomicDirectory output(options->output, {.overwrite = options->overwrite});
    stunt::recipe::OneshotOptions oneshot;
    oneshot.target = options->target;
    auto calibrate = [&](const stunt::io::Tokenizer* tokenizer) {
      if (!options->dataset.empty()) {
        oneshot.calibration =
            stunt::recipe::load_calibration(options->dataset, tokenizer, options->calibration);
      }
    };
    if (torchscript) {
      if (sparse_format != stunt::quant::SparseFormat::Dense) {
        throw stunt::ValueError(stunt::str("--sparse-format ", options->sparse_format,
                                           ": the sparse layouts are written for Hugging Face "
                                           "folders, not TorchScript archives"));
      }
      auto model = stunt::model::load_script_model(model_path);
      calibrate(nullptr);
      const auto state = stunt::recipe::run_oneshot(recipe, *model, oneshot);
      if (state.quantization.empty()) {
        model->save(output.staging());
      } else {
        stunt::quant::save_compressed_script(*model, state.quantization, output.staging());
      }
    } else {
      auto model = stunt::quant::load_model(options->model);
      std::optional<stunt::io::Tokenizer> tokenizer;
      if (!options->dataset.empty() && !tokenized) {
        tokenizer.emplace(stunt::model::load_model_tokenizer(options->model));
      }
      calibrate(tokenizer ? &*tokenizer : nullptr);
      // Structured pruning may replace the model with a smaller one.
      const auto state = stunt::recipe::run_oneshot(recipe, model, oneshot);
      if (!state.quantization.empty()) {
        stunt::quant::save_compressed(*model, state.quantization, output.staging());
      } else if (sparse_format != stunt::quant::SparseFormat::Dense) {
        stunt::quant::save_sparse_compressed(*model, sparse_format, output.staging());
      } else {
        model->save(output.staging());
      }
    }
    stunt::write_file_atomic(output.staging() / "recipe.yaml", recipe.to_yaml());
    output.commit();
    stunt::log::info("wrote ", options->output);
    return 0;
  };
}

}  // namespace compress
