#include "stunt/io/checkpoint.h"

#include <fstream>
#include <sstream>

#include "detail/torch_archive.h"
#include "stunt/core/error.h"
#include "stunt/core/logging.h"
#include "stunt/io/hf_folder.h"
#include "stunt/io/safetensors.h"
#include "stunt/io/safetensors_index.h"

namespace fs = std::filesystem;

namespace stunt::io {

const char* format_name(CheckpointFormat format) {
  switch (format) {
    case CheckpointFormat::Safetensors:
      return "safetensors";
    case CheckpointFormat::SafetensorsSharded:
      return "safetensors-sharded";
    case CheckpointFormat::TorchSave:
      return "torch-save";
    case CheckpointFormat::TorchScript:
      return "torchscript";
    case CheckpointFormat::Gguf:
      return "gguf";
  }
  return "unknown";
}

namespace {

TensorEntry entry_from(const SafetensorsTensorInfo& info, const fs::path& file) {
  return TensorEntry{info.name,  dtype_name(info.dtype), info.shape,
                     info.numel, info.end - info.begin,  file};
}

class SafetensorsCheckpoint : public Checkpoint {
 public:
  explicit SafetensorsCheckpoint(const fs::path& path)
      : Checkpoint(path), file_(SafetensorsFile::open(path)) {
    for (const auto& info : file_->header().tensors) entries_.push_back(entry_from(info, path));
  }
  CheckpointFormat format() const override { return CheckpointFormat::Safetensors; }
  const std::vector<TensorEntry>& entries() const override { return entries_; }
  at::Tensor load(const std::string& name) const override { return file_->tensor(name); }
  std::map<std::string, std::string> metadata() const override { return file_->header().metadata; }

 private:
  std::shared_ptr<SafetensorsFile> file_;
  std::vector<TensorEntry> entries_;
};

class ShardedCheckpoint : public Checkpoint {
 public:
  explicit ShardedCheckpoint(const fs::path& index_path) : Checkpoint(index_path) {
    const std::string source = index_path.string();
    std::ifstream in(index_path, std::ios::binary);
    STUNT_CHECK_AS(IoError, in.good(), "cannot open '", source, "'");
    std::stringstream text;
    text << in.rdbuf();
    const SafetensorsIndex index = parse_safetensors_index(text.str(), source);
    const fs::path folder = index_path.parent_path();
    for (const auto& shard : index.shards()) {
      const fs::path shard_path = folder / shard;
      STUNT_CHECK_AS(IoError, fs::is_regular_file(shard_path), source, ": shard '", shard,
                     "' named in weight_map does not exist in '", folder.string(), "'");
      shards_[shard] = SafetensorsFile::open(shard_path);
    }
    // Only weight_map decides what the checkpoint holds; list tensors in shard then file order.
    for (const auto& [shard, file] : shards_) {
      for (const auto& info : file->header().tensors) {
        auto it = index.weight_map.find(info.name);
        if (it == index.weight_map.end() || it->second != shard) {
          log::debug(source, ": ignoring tensor '", info.name, "' in shard '", shard,
                     "', which weight_map does not assign to it");
          continue;
        }
        owner_[info.name] = file.get();
        entries_.push_back(entry_from(info, file->path()));
      }
    }
    for (const auto& [tensor, shard] : index.weight_map) {
      STUNT_CHECK_AS(FormatError, owner_.count(tensor) == 1, source, ": weight_map puts '", tensor,
                     "' in '", shard, "', but that shard has no such tensor");
    }
  }
  CheckpointFormat format() const override { return CheckpointFormat::SafetensorsSharded; }
  const std::vector<TensorEntry>& entries() const override { return entries_; }
  at::Tensor load(const std::string& name) const override {
    auto it = owner_.find(name);
    STUNT_CHECK(it != owner_.end(), path().string(), ": no tensor named '", name, "'");
    return it->second->tensor(name);
  }

 private:
  std::map<std::string, std::shared_ptr<SafetensorsFile>> shards_;
  std::map<std::string, const SafetensorsFile*> owner_;
  std::vector<TensorEntry> entries_;
};

bool starts_with_zip_magic(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  char magic[4] = {};
  in.read(magic, 4);
  return in.gcount() == 4 && magic[0] == 'P' && magic[1] == 'K' && magic[2] == 3 && magic[3] == 4;
}

bool starts_with_gguf_magic(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  char magic[4] = {};
  in.read(magic, 4);
  return in.gcount() == 4 && std::string_view(magic, 4) == "GGUF";
}

bool starts_with_legacy_pickle(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  unsigned char first[2] = {};
  in.read(reinterpret_cast<char*>(first), 2);
  // Pickle protocol 2 opens with PROTO 0x80 0x02, as PyTorch's pre-1.6 torch.save format does.
  return in.gcount() == 2 && first[0] == 0x80 && first[1] == 0x02;
}

}  // namespace

std::unique_ptr<Checkpoint> Checkpoint::open(const fs::path& path) {
  std::error_code ec;
  STUNT_CHECK_AS(IoError, fs::exists(path, ec), "'", path.string(), "' does not exist");
  if (fs::is_directory(path, ec)) {
    const HfWeights weights = find_hf_weights(path);
    switch (weights.kind) {
      case HfWeights::Kind::Safetensors:
        return std::make_unique<SafetensorsCheckpoint>(weights.path);
      case HfWeights::Kind::SafetensorsIndex:
        return std::make_unique<ShardedCheckpoint>(weights.path);
      case HfWeights::Kind::TorchBin:
        return open_torch_save(weights.path);
    }
  }
  const std::string name = path.filename().string();
  if (name.size() > 11 && name.rfind(".index.json") == name.size() - 11) {
    return std::make_unique<ShardedCheckpoint>(path);
  }
  if (starts_with_gguf_magic(path)) return open_gguf(path);
  if (starts_with_zip_magic(path)) {
    return detail::is_torchscript_archive(path) ? open_torchscript(path) : open_torch_save(path);
  }
  STUNT_CHECK_AS(FormatError, !starts_with_legacy_pickle(path), path.string(),
                 ": this is the legacy (pre-1.6) torch.save format, which Stunt does not read; "
                 "re-save it with a current PyTorch (torch.save(dict(state_dict), path)) or "
                 "convert it to safetensors");
  return std::make_unique<SafetensorsCheckpoint>(path);
}

}  // namespace stunt::io
