// torch.save (zip) state dicts through torch::pickle_load, and TorchScript archives through
// torch::jit::load.
#include <ATen/ATen.h>
#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/serialization/import.h>
#include <torch/csrc/jit/serialization/pickle.h>

#include <fstream>

#include "detail/torch_archive.h"
#include "stunt/core/error.h"
#include "stunt/core/logging.h"
#include "stunt/io/checkpoint.h"
#include "stunt/io/tensor_dtype.h"

namespace fs = std::filesystem;

namespace stunt::io {
namespace {

std::string first_line(const c10::Error& e) {
  std::string message = e.what_without_backtrace();
  return message.substr(0, message.find('\n'));
}

TensorEntry entry_for(const std::string& name, const at::Tensor& t, const fs::path& file) {
  std::string dtype;
  try {
    dtype = dtype_name(to_safetensors_dtype(t.scalar_type()));
  } catch (const ValueError&) {
    dtype = c10::toString(t.scalar_type());  // e.g. quantized types: listed, not convertible
  }
  return TensorEntry{name, dtype, t.sizes().vec(), static_cast<uint64_t>(t.numel()),
                     static_cast<uint64_t>(t.nbytes()), file};
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

void flatten(const c10::IValue& value, const std::string& prefix,
             std::vector<std::pair<std::string, at::Tensor>>& out) {
  const auto join = [&](const std::string& key) { return prefix.empty() ? key : prefix + "." + key; };
  if (value.isTensor()) {
    out.emplace_back(prefix.empty() ? "tensor" : prefix, value.toTensor());
  } else if (value.isGenericDict()) {
    for (const auto& item : value.toGenericDict()) {
      const auto& key = item.key();
      std::string name = key.isString() ? key.toStringRef()
                         : key.isInt()  ? std::to_string(key.toInt())
                                        : std::string();
      if (name.empty()) continue;
      flatten(item.value(), join(name), out);
    }
  } else if (value.isList()) {
    const auto list = value.toListRef();
    for (size_t i = 0; i < list.size(); ++i) flatten(list[i], join(std::to_string(i)), out);
  } else if (value.isTuple()) {
    const auto& elements = value.toTupleRef().elements();
    for (size_t i = 0; i < elements.size(); ++i) flatten(elements[i], join(std::to_string(i)), out);
  } else {
    log::debug("skipping non-tensor entry '", prefix, "' (", value.tagKind(), ")");
  }
}

// LibTorch's unpickler turns collections.OrderedDict into None (it expects one only as the
// empty backward-hook argument of each tensor), so `torch.save(model.state_dict())` cannot be
// read through it. Say so plainly instead of surfacing its internal assertion.
constexpr const char* kOrderedDictFix =
    ": this torch.save file holds an OrderedDict (as torch.save(model.state_dict()) writes), "
    "which LibTorch's reader cannot load; re-save it with torch.save(dict(model.state_dict()), "
    "path), or save safetensors (safetensors.torch.save_file)";

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
                          first_line(e), ")"));
  }
}

}  // namespace detail

std::unique_ptr<Checkpoint> open_torch_save(const fs::path& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  STUNT_CHECK_AS(IoError, in.good(), "cannot open '", path.string(), "'");
  std::vector<char> bytes(static_cast<size_t>(in.tellg()));
  in.seekg(0);
  in.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  STUNT_CHECK_AS(IoError, in.good(), "cannot read '", path.string(), "'");
  c10::IValue root;
  try {
    root = torch::jit::pickle_load(bytes);
  } catch (const c10::Error& e) {
    const std::string cause = first_line(e);
    STUNT_CHECK_AS(NotImplementedError, cause.find("Expected GenericDict but got None") ==
                   std::string::npos, path.string(), kOrderedDictFix);
    throw FormatError(str(path.string(), ": cannot read this torch.save archive (", cause,
                          "); Stunt reads plain dicts of tensors: save dict(model.state_dict()) "
                          "or convert to safetensors"));
  }
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  flatten(root, "", tensors);
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
    throw FormatError(str(path.string(), ": cannot load this TorchScript archive (",
                          first_line(e), ")"));
  }
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (const auto& p : module.named_parameters(/*recurse=*/true)) tensors.emplace_back(p.name, p.value);
  for (const auto& b : module.named_buffers(/*recurse=*/true)) tensors.emplace_back(b.name, b.value);
  return std::make_unique<InMemoryCheckpoint>(path, CheckpointFormat::TorchScript,
                                              std::move(tensors));
}

}  // namespace stunt::io
