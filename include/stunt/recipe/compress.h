#pragma once
/// `compress --recipe RECIPE MODEL -o OUT` as one library call: what the model is (Hugging Face
/// folder, GGUF file, compressed-tensors folder, TorchScript archive), its calibration data, the
/// one-shot run, and the writer that fits the result, into a folder written atomically.

#include <filesystem>
#include <optional>
#include <string>

#include "stunt/quant/sparse_compressed.h"
#include "stunt/recipe/oneshot.h"
#include "stunt/recipe/recipe.h"
#include "stunt/recipe/training.h"

namespace stunt::recipe {

struct CompressOptions {
  /// Calibration data (text, JSONL, or safetensors input_ids); empty: none (data-free methods
  /// only; a calibrating modifier then refuses to run).
  std::filesystem::path dataset;
  CalibrationOptions calibration;
  /// Where the model will run ("cpu", "a10", "a100", "h100", "h200" or ""), for checks.
  std::string target;
  /// How pruned weights are stored when nothing is quantized.
  quant::SparseFormat sparse_format = quant::SparseFormat::Dense;
  /// Replace an existing output folder.
  bool overwrite = false;
  /// How train stages run (recipes with train stages train on `dataset`). Without a
  /// checkpoint_dir, checkpoints go to <output>.checkpoints and are removed once the output is
  /// written.
  TrainingRunOptions training;
  /// Data-parallel training as torchrun describes it (train::distributed_environment()): the
  /// ranks join one process group before the model loads, train stages share their steps, and
  /// rank 0 alone writes the output. Refused for recipes without a train stage.
  std::optional<train::DistributedEnvironment> distributed;
};

/// What compress_model wrote.
struct CompressResult {
  /// "compressed-tensors", "torchscript", "dense" or a sparse layout's name.
  std::string format;
  /// Layers quantized (0 when the recipe only prunes).
  size_t quantized_layers = 0;
};

/// Loads the model at `model`, runs `recipe` (validated, see load_recipe) on it (one-shot
/// stages, and train stages on `dataset`, see training.h) and writes the result with the recipe as
/// run (recipe.yaml) into `output`: compressed-tensors for quantized Hugging Face models, the
/// model's own format otherwise, TorchScript in TorchScript out. Everything that can be refused is
/// refused before the output folder appears; an interrupted call leaves no partial output. Throws
/// stunt::Error subclasses naming the file, the recipe path or the layer, and the fix.
CompressResult compress_model(const Recipe& recipe, const std::filesystem::path& model,
                              const std::filesystem::path& output,
                              const CompressOptions& options = {});

}  // namespace stunt::recipe
