#pragma once
/// A checkpoint held in memory: tensors already loaded (and perhaps reshaped by an algorithm)
/// that a model loader reads as it reads a file. Structured pruning rebuilds models from one.

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "stunt/io/checkpoint.h"

namespace stunt::io {

/// `tensors` in the order given, reported as safetensors; `origin` names where they came from
/// in error messages (the source folder, "pruned model").
std::unique_ptr<Checkpoint> memory_checkpoint(
    std::vector<std::pair<std::string, at::Tensor>> tensors, const std::filesystem::path& origin);

}  // namespace stunt::io
