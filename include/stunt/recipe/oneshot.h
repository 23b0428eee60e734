#pragma once
/// One-shot compression: runs a recipe's post-training modifiers on a model with calibration
/// data, the way llm-compressor's oneshot() does.

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "stunt/io/tokenizer.h"
#include "stunt/model/model.h"
#include "stunt/recipe/modifier.h"
#include "stunt/recipe/recipe.h"

namespace stunt::recipe {

struct OneshotOptions {
  /// Calibration batches (token ids). Needed when a modifier calibrates (GPTQ, SmoothQuant,
  /// static activation scales); weight-only round to nearest needs none.
  std::vector<model::Batch> calibration;
  /// Where the model will run ("cpu", "a10", "a100", "h100", "h200" or ""), for checks.
  std::string target;
};

struct CalibrationOptions {
  /// How many samples, of how many tokens (llm-compressor's defaults: 512 x 384).
  int64_t num_samples = 512;
  int64_t seq_len = 384;
  /// Seeds the random choice of windows from a text file.
  uint64_t seed = 0;
  /// Samples per forward pass (llm-compressor calibrates one at a time).
  int64_t batch_size = 1;
};

/// Calibration batches from `path`: a safetensors file with an int64/int32 `input_ids` tensor
/// [samples, tokens] (optional `attention_mask`) is used as it is (its first num_samples rows);
/// a text or JSONL file is tokenized with `tokenizer` and num_samples windows of seq_len tokens
/// are drawn at random (seeded) from it, as GPTQ samples wikitext-2 and C4.
std::vector<model::Batch> load_calibration(const std::filesystem::path& path,
                                           const io::Tokenizer* tokenizer,
                                           const CalibrationOptions& options);

/// What a one-shot run would do with one modifier, found without a model.
struct ModifierCheck {
  const ModifierSpec* spec = nullptr;
  /// Why the run would stop at this modifier; empty when it runs.
  std::string refusal;
  /// Whether it needs calibration data (--dataset).
  bool calibrates = false;
  /// Whether it cuts layers, heads or channels (Hugging Face models only).
  bool changes_structure = false;
  /// Whether it runs in a train stage (needs --dataset as training data).
  bool trains = false;
};

/// Every check that a run makes before it looks at the model, for every modifier at once (a run
/// stops at the first refusal): each modifier's own argument checks, structure-changing
/// modifiers first; in train stages (training.h), whether the modifier can train. `recipe` must
/// be validated.
std::vector<ModifierCheck> check_oneshot(const Recipe& recipe);

/// Creates every modifier of `recipe` and initializes them all (so every check runs before any
/// work), gives each its turn in recipe order (a sequential pass over the blocks when it
/// calibrates), ends and finalizes them, and finally makes quantized layers quantize their
/// inputs as their schemes say. Returns the state: its quantization plan describes the result.
/// Throws RecipeError/ValueError naming the recipe path for what cannot run.
/// Structured pruning modifiers (LayerPruningModifier, HeadPruningModifier,
/// ChannelPruningModifier) are refused here: they need the overload below.
State run_oneshot(const Recipe& recipe, model::Model& model, const OneshotOptions& options);

/// The same for a Hugging Face model, with structured pruning: the recipe's leading structured
/// modifiers replace `model` with smaller ones, in order, then the rest run on the result. A
/// structured modifier after any other is refused (the others resolved their layers already).
State run_oneshot(const Recipe& recipe, std::unique_ptr<model::HfModel>& model,
                  const OneshotOptions& options);
/// The same, continuing from `state` (the plan and pruned masks of earlier stages).
State run_oneshot(const Recipe& recipe, std::unique_ptr<model::HfModel>& model,
                  const OneshotOptions& options, State state);

}  // namespace stunt::recipe
