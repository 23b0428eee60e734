#pragma once
/// Hugging Face model folders: where the weights are, and the files (config, generation
/// config, tokenizer, sentence-transformers modules) that pass through to outputs unchanged.

#include <filesystem>
#include <vector>

namespace stunt::io {

/// The weights of a Hugging Face folder.
struct HfWeights {
  enum class Kind { Safetensors, SafetensorsIndex, TorchBin } kind;
  std::filesystem::path path;
};

/// Finds the weights in `folder`: model.safetensors.index.json, then model.safetensors, then
/// pytorch_model.bin. Throws IoError listing what was looked for when none is there.
HfWeights find_hf_weights(const std::filesystem::path& folder);

/// The non-weight files of `folder` that outputs carry unchanged, relative to it: config.json,
/// generation_config.json, tokenizer and chat-template files, README.md, and the
/// sentence-transformers module files (modules.json, 1_Pooling/config.json, ...).
std::vector<std::filesystem::path> hf_passthrough_files(const std::filesystem::path& folder);

/// Copies hf_passthrough_files(from) into `to` (each file atomically), creating subfolders.
/// Returns the relative paths copied.
std::vector<std::filesystem::path> copy_hf_passthrough_files(const std::filesystem::path& from,
                                                             const std::filesystem::path& to);

}  // namespace stunt::io
