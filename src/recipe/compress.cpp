#include "stunt/recipe/compress.h"

#include <algorithm>
#include <optional>

#include "stunt/core/atomic_file.h"
#include "stunt/core/error.h"
#include "stunt/core/logging.h"
#include "stunt/io/checkpoint.h"
#include "stunt/model/load.h"
#include "stunt/model/script_model.h"
#include "stunt/quant/compressed_tensors.h"
#include "stunt/quant/torchscript_export.h"

namespace stunt::recipe {
namespace fs = std::filesystem;

CompressResult compress_model(const Recipe& recipe, const fs::path& model_path,
                              const fs::path& output, const CompressOptions& options) {
  using quant::SparseFormat;
  const std::string sparse_name = quant::to_string(options.sparse_format);
  // The legacy sparse layouts store unquantized values: refuse before any work.
  if (const auto* spec = first_weight_quantizer(recipe);
      spec != nullptr && options.sparse_format != SparseFormat::Dense) {
    throw ValueError(str("--sparse-format ", sparse_name, ": ", recipe.source, ": ", spec->path,
                         " (", spec->type,
                         ") quantizes the weights, and the sparse layouts store unquantized "
                         "values; drop --sparse-format (quantized outputs are packed already) or "
                         "the quantization"));
  }
  const bool trains = std::any_of(recipe.stages.begin(), recipe.stages.end(), is_train_stage);
  // Where training checkpoints go unless the caller says: beside the output ("out/" as "out").
  const fs::path bare_output = output.filename().empty() ? output.parent_path() : output;
  const fs::path default_checkpoints =
      bare_output.parent_path() / (bare_output.filename().string() + ".checkpoints");
  if (trains) {
    // Every refusal before the model loads: a modifier that cannot train, or one-shot.
    for (const ModifierCheck& check : check_oneshot(recipe)) {
      if (!check.refusal.empty()) throw RecipeError(check.refusal);
    }
    STUNT_CHECK_AS(ValueError, !options.dataset.empty() || !options.training.labels.empty(),
                   recipe.source,
                   ": the recipe has a train stage; give the training data with --dataset (text, "
                   "JSONL with a \"text\" field, or .safetensors input_ids), or a teacher's "
                   "labels with --labels");
  }
  bool torchscript = false;
  if (model_path.extension() != ".gguf") {
    // Damaged weights are reported by the reader that understands them, before anything else.
    const auto checkpoint = io::Checkpoint::open(model_path);
    torchscript = checkpoint->format() == io::CheckpointFormat::TorchScript;
    // A sound bare file still lacks the configuration the model engine needs.
    if (!torchscript && !fs::is_directory(model_path)) {
      throw ValueError(str(model_path.string(), ": a bare ", io::format_name(checkpoint->format()),
                           " checkpoint has no model configuration; `compress --recipe` runs on a "
                           "Hugging Face folder (config.json + weights), a GGUF file or a "
                           "TorchScript archive"));
    }
  }
  const bool tokenized = options.dataset.extension() == ".safetensors";
  if (torchscript && !options.dataset.empty() && !tokenized) {
    throw ValueError(str(options.dataset.string(),
                         ": a TorchScript archive carries no tokenizer to read text with; give "
                         "--dataset a .safetensors file holding input_ids [samples, tokens]"));
  }
  if (torchscript && trains) {
    throw ValueError(str(model_path.string(),
                         ": the recipe trains, and training runs on Hugging "
                         "Face models (folders or GGUF files), not TorchScript "
                         "archives"));
  }
  if (torchscript && options.sparse_format != SparseFormat::Dense) {
    throw ValueError(str("--sparse-format ", sparse_name,
                         ": the sparse layouts are written for Hugging Face folders, not "
                         "TorchScript archives"));
  }
  std::shared_ptr<train::ProcessGroup> group;
  if (options.distributed && options.distributed->world_size > 1) {
    STUNT_CHECK_AS(ValueError, trains, recipe.source,
                   ": WORLD_SIZE=", options.distributed->world_size,
                   ": only train stages run data-parallel, and this recipe has none; run it in "
                   "one process");
    // Before the output check, so that a rank refusing it makes the others fail, not wait.
    group = std::make_shared<train::ProcessGroup>(*options.distributed);
  }
  // Fail before any work when the output cannot be written; rank 0 alone writes it.
  const bool writes = !group || group->rank() == 0;
  std::optional<AtomicDirectory> folder;
  if (writes) folder.emplace(output, OutputFolderOptions{.overwrite = options.overwrite});
  OneshotOptions oneshot;
  oneshot.target = options.target;
  auto calibrate = [&](const io::Tokenizer* tokenizer) {
    if (!options.dataset.empty()) {
      oneshot.calibration = load_calibration(options.dataset, tokenizer, options.calibration);
    }
  };
  CompressResult result;
  if (torchscript) {
    auto model = model::load_script_model(model_path);
    calibrate(nullptr);
    const State state = run_oneshot(recipe, *model, oneshot);
    result.quantized_layers = state.quantization.layers().size();
    if (state.quantization.empty()) {
      model->save(folder->staging());
    } else {
      quant::save_compressed_script(*model, state.quantization, folder->staging());
    }
    result.format = "torchscript";
  } else {
    auto model = quant::load_model(model_path);
    std::optional<io::Tokenizer> tokenizer;
    // Text to read, or labels (texts of a labelled corpus, the pad id of stored tokens).
    if ((!options.dataset.empty() && !tokenized) || !options.training.labels.empty()) {
      tokenizer.emplace(model::load_model_tokenizer(model_path));
    }
    const bool calibrates = std::any_of(recipe.stages.begin(), recipe.stages.end(),
                                        [](const Stage& s) { return !is_train_stage(s); });
    if (calibrates) calibrate(tokenizer ? &*tokenizer : nullptr);
    TrainingRunOptions training = options.training;
    training.dataset = options.dataset;
    training.tokenizer = tokenizer ? &*tokenizer : nullptr;
    training.fingerprint = fs::absolute(model_path).string();
    if (training.checkpoint_dir.empty()) training.checkpoint_dir = default_checkpoints;
    training.process_group = group;
    // Structured pruning may replace the model with a smaller one.
    const State state =
        trains ? run_recipe(recipe, model, oneshot, training) : run_oneshot(recipe, model, oneshot);
    result.quantized_layers = state.quantization.layers().size();
    if (!writes) {
      log::info("rank ", group->rank(), " done; rank 0 writes ", output.string());
      return result;
    }
    if (!state.quantization.empty()) {
      quant::save_compressed(*model, state.quantization, folder->staging());
      result.format = "compressed-tensors";
    } else if (options.sparse_format != SparseFormat::Dense) {
      quant::save_sparse_compressed(*model, options.sparse_format, folder->staging());
      result.format = sparse_name;
    } else {
      model->save(folder->staging());
      result.format = "dense";
    }
  }
  write_file_atomic(folder->staging() / "recipe.yaml", recipe.to_yaml());
  folder->commit();
  std::error_code ec;
  if (trains && (options.training.checkpoint_dir.empty() ||
                 fs::equivalent(options.training.checkpoint_dir, default_checkpoints, ec))) {
    // The output holds the result; the default checkpoints only served a resume.
    fs::remove_all(default_checkpoints, ec);
  }
  log::info("wrote ", output.string(), " (", result.format, ")");
  return result;
}

}  // namespace stunt::recipe
