#pragma once
// Training checkpoints: one folder per step, `<dir>/step-00000120/`, written under a temporary
// name and renamed, holding what an exact resume needs: the trainable tensors
// (model.safetensors), the optimizer's per-tensor state (optimizer.safetensors), the callbacks'
// tensors (callbacks.safetensors) and the step, identity and callbacks' JSON (trainer.json).

#include <torch/optim/optimizer.h>

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "stunt/train/trainer.h"

namespace stunt::train::detail {

/// What a checkpoint must match to be resumed.
struct CheckpointIdentity {
  /// The run's fingerprint (recipe, model), the data's, and the run's shape.
  std::string run;
  std::string data;
  int64_t steps_per_epoch = 0;
  int64_t total_steps = 0;
  std::string optimizer;
  /// Data-parallel ranks: each keeps its own dropout stream, so a resume needs as many.
  int64_t world_size = 1;
};

struct CheckpointContents {
  int64_t step = 0;
  CheckpointIdentity identity;
  const std::vector<std::pair<std::string, at::Tensor>>* parameters = nullptr;
  torch::optim::Optimizer* optimizer = nullptr;
  std::map<std::string, CallbackState> callbacks;
};

/// Writes `<dir>/step-<step>` atomically (replacing one of the same step), then removes the
/// oldest complete checkpoints beyond `keep`.
void write_training_checkpoint(const std::filesystem::path& dir, const CheckpointContents& contents,
                               int64_t keep);

/// Restores the trainable tensors, the optimizer state and the callbacks' states from the
/// newest complete checkpoint in `dir` and returns its step; nothing when there is none.
/// ValueError naming the checkpoint when it was written for another run.
std::optional<int64_t> read_training_checkpoint(
    const std::filesystem::path& dir, const CheckpointIdentity& expected,
    const std::vector<std::pair<std::string, at::Tensor>>& parameters,
    torch::optim::Optimizer& optimizer, std::map<std::string, CallbackState>& callbacks);

/// The complete checkpoints in `dir` (folders step-NNNNNNNN holding trainer.json), by step.
std::vector<std::pair<int64_t, std::filesystem::path>> list_training_checkpoints(
    const std::filesystem::path& dir);

}  // namespace stunt::train::detail
