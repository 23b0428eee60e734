#include "stunt/io/memory_checkpoint.h"

#include <map>

#include "stunt/core/error.h"
#include "stunt/io/tensor_dtype.h"

namespace stunt::io {
namespace {

class MemoryCheckpoint final : public Checkpoint {
 public:
  MemoryCheckpoint(std::vector<std::pair<std::string, at::Tensor>> tensors,
                   const std::filesystem::path& origin)
      : Checkpoint(origin) {
    for (auto& [name, tensor] : tensors) {
      STUNT_CHECK(tensor.defined(), origin.string(), ": tensor ", name, " is undefined");
      STUNT_CHECK(tensors_.count(name) == 0, origin.string(), ": tensor ", name, " given twice");
      TensorEntry entry;
      entry.name = name;
      entry.dtype = dtype_name(to_safetensors_dtype(tensor.scalar_type()));
      entry.shape = tensor.sizes().vec();
      entry.numel = static_cast<uint64_t>(tensor.numel());
      entry.nbytes = static_cast<uint64_t>(tensor.nbytes());
      entry.file = origin;
      entries_.push_back(std::move(entry));
      tensors_.emplace(name, std::move(tensor));
    }
  }

  CheckpointFormat format() const override { return CheckpointFormat::Safetensors; }
  const std::vector<TensorEntry>& entries() const override { return entries_; }
  at::Tensor load(const std::string& name) const override {
    auto it = tensors_.find(name);
    if (it == tensors_.end()) {
      throw ValueError(str(path().string(), ": no tensor named ", name));
    }
    // A tensor of its own (sharing the storage): a model built from these tensors must not
    // share tensor objects with the model they came from, or readying one for training
    // (Model::prepare_training) would change the other.
    return it->second.detach();
  }

 private:
  std::vector<TensorEntry> entries_;
  std::map<std::string, at::Tensor> tensors_;
};

}  // namespace

std::unique_ptr<Checkpoint> memory_checkpoint(
    std::vector<std::pair<std::string, at::Tensor>> tensors, const std::filesystem::path& origin) {
  return std::make_unique<MemoryCheckpoint>(std::move(tensors), origin);
}

}  // namespace stunt::io
