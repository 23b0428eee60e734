// torch.save (zip) archives through Stunt's restricted unpickler (detail/torch_pickle.h), and
// TorchScript archives through torch::jit::load.
#include <ATen/ATen.h>
#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/serialization/import.h>

#include "detail/torch_archive.h"
#include "detail/torch_pickle.h"
#include "stunt/core/error.h"
#include "stunt/core/logging.h"
#include "stunt/io/checkpoint.h"
#include "stunt/io/tensor_dtype.h"

namespace fs = std::filesystem;

namespace stunt::io {
namespace {

TensorEntry entry_for(const std::string& name, const at::Tensor& t, const fs::path& file) {
  std::string dtype;
  try {
    dtype = dtype_name(to_safetensors_dtype(t.scalar_type()));
  } catch (const ValueError&) {
    dtype = c10::toString(t.scalar_type());  // e.g. quantized types: listed, not convertible
  }
  return TensorEntry{name,
                     dtype,
                     t.sizes().vec(),
                     static_cast<uint64_t>(t.numel()),
                     static_cast<uint64_t>(t.nbytes()),
                     file};
}

/// Tensors held in memory after the whole archive was read.
class InMemoryCheckpoint : public Checkpoint {
 public:
  InMemoryCheckpoint(const fs::path& path, CheckpointFormat format,
                     std::vector<std::pair<std::string, at::Tensor>> tensors)
      : Checkpoint(path), format_(format) {
    for (auto& [name, tensor] : tensors) {
      if (!tensors_.emplace(name, tensor).second) continue;  // tied weights listed once
      entries_.push_back(entry_for(name, tensor, path));
    }
  }
  CheckpointFormat format() const override { return format_; }
  const std::vector<TensorEntry>& entries() const override { return entries_; }
  at::Tensor load(const std::string& name) const override {
    auto it = tensors_.find(name);
    STUNT_CHECK(it != tensors_.end(), path().string(), ": no tensor named '", name, "'");
    return it->second;
  }

 private:
  CheckpointFormat format_;
  std::map<std::string, at::Tensor> tensors_;
  std::vector<TensorEntry> entries_;
};

}  // namespace

namespace detail {

bool is_torchscript_archive(const fs::path& path) {
  try {
    caffe2::serialize::PyTorchStreamReader reader(path.string());
    if (reader.hasRecord("constants.pkl")) return true;
    for (const auto& record : reader.getAllRecords()) {
      if (record.rfind("code/", 0) == 0) return true;
    }
    return false;
  } catch (const c10::Error& e) {
    throw FormatError(str(path.string(), ": a zip file that is not a PyTorch archive (",
                          detail::first_line(e), ")"));
  }
}

}  // namespace detail

std::unique_ptr<Checkpoint> open_torch_save(const fs::path& path) {
  auto tensors = detail::read_torch_save(path);
  STUNT_CHECK_AS(FormatError, !tensors.empty(), path.string(),
                 ": the torch.save archive holds no tensors");
  return std::make_unique<InMemoryCheckpoint>(path, CheckpointFormat::TorchSave,
                                              std::move(tensors));
}

std::unique_ptr<Checkpoint> open_torchscript(const fs::path& path) {
  torch::jit::Module module;
  try {
    module = torch::jit::load(path.string(), c10::Device(c10::kCPU));
  } catch (const c10::Error& e) {
    throw FormatError(
        str(path.string(), ": cannot load this TorchScript archive (", detail::first_line(e), ")"));
  }
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (const auto& p : module.named_parameters(/*recurse=*/true))
    tensors.emplace_back(p.name, p.value);
  for (const auto& b : module.named_buffers(/*recurse=*/true))
    tensors.emplace_back(b.name, b.value);
  return std::make_unique<InMemoryCheckpoint>(path, CheckpointFormat::TorchScript,
                                              std::move(tensors));
}

}  // namespace stunt::io
