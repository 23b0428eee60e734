#pragma once
/// Opens any checkpoint Stunt reads and lists or loads its tensors by qualified name:
/// a safetensors file, a Hugging Face folder (single or sharded safetensors, or
/// pytorch_model.bin), a Python torch.save file (zip format), a TorchScript archive, or a
/// GGUF file.

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace stunt::io {

enum class CheckpointFormat { Safetensors, SafetensorsSharded, TorchSave, TorchScript, Gguf };

/// "safetensors", "safetensors-sharded", "torch-save", "torchscript", "gguf".
const char* format_name(CheckpointFormat format);

/// What is known about a tensor without reading its data.
struct TensorEntry {
  std::string name;
  /// safetensors dtype name ("F32", "BF16", ...).
  std::string dtype;
  std::vector<int64_t> shape;
  uint64_t numel = 0;
  uint64_t nbytes = 0;
  /// The file holding it (a shard, the archive).
  std::filesystem::path file;
};

class Checkpoint {
 public:
  virtual ~Checkpoint() = default;
  /// Detects the kind of `path` and opens it; throws IoError/FormatError naming the file.
  static std::unique_ptr<Checkpoint> open(const std::filesystem::path& path);

  virtual CheckpointFormat format() const = 0;
  /// Tensors in the order the file stores them.
  virtual const std::vector<TensorEntry>& entries() const = 0;
  /// Loads one tensor on the CPU; throws ValueError for an unknown name.
  virtual at::Tensor load(const std::string& name) const = 0;
  /// File-level metadata (safetensors `__metadata__`), if any.
  virtual std::map<std::string, std::string> metadata() const { return {}; }

  const std::filesystem::path& path() const { return path_; }

 protected:
  explicit Checkpoint(std::filesystem::path path) : path_(std::move(path)) {}

 private:
  std::filesystem::path path_;
};

/// A torch.save file (zip format) whose nested dicts/lists of tensors are flattened to
/// dotted names; non-tensor leaves are skipped.
std::unique_ptr<Checkpoint> open_torch_save(const std::filesystem::path& path);
/// A GGUF file: tensors under llama.cpp's names, dtype the ggml type ("Q4_1"), loaded
/// dequantized to float32.
std::unique_ptr<Checkpoint> open_gguf(const std::filesystem::path& path);
/// A TorchScript archive: every parameter and buffer under its qualified name.
std::unique_ptr<Checkpoint> open_torchscript(const std::filesystem::path& path);

}  // namespace stunt::io
