#include "stunt/io/safetensors.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <numeric>
#include <set>

#include "stunt/core/atomic_file.h"
#include "stunt/core/error.h"
#include "stunt/core/mapped_file.h"
#include "stunt/io/tensor_dtype.h"

namespace stunt::io {

namespace {

std::vector<int64_t> torch_shape(const SafetensorsTensorInfo& info, const std::string& source) {
  if (info.dtype != SafetensorsDtype::F4) return info.shape;
  // LibTorch's fp4 type packs two values per element along the last dimension.
  STUNT_CHECK_AS(NotImplementedError, !info.shape.empty() && info.shape.back() % 2 == 0, source,
                 ": tensor '", info.name,
                 "' is F4 with shape whose last dimension is odd; "
                 "LibTorch stores F4 in pairs (float4_e2m1fn_x2) and cannot represent it");
  std::vector<int64_t> shape = info.shape;
  shape.back() /= 2;
  return shape;
}

}  // namespace

std::shared_ptr<SafetensorsFile> SafetensorsFile::open(const std::filesystem::path& path) {
  auto mapping = MappedFile::open(path);
  std::shared_ptr<SafetensorsFile> file(new SafetensorsFile());
  file->path_ = path;
  file->data_ = mapping->data();
  file->size_ = mapping->size();
  file->header_ =
      parse_safetensors_header(mapping->data(), mapping->size(), mapping->size(), path.string());
  file->mapping_ = std::move(mapping);
  return file;
}

SafetensorsFile::~SafetensorsFile() = default;

at::Tensor SafetensorsFile::tensor(std::string_view name) const {
  const SafetensorsTensorInfo* info = header_.find(name);
  STUNT_CHECK(info != nullptr, path_.string(), ": no tensor named '", name, "' (the file holds ",
              header_.tensors.size(), " tensors; `compress inspect` lists them)");
  const auto type = to_scalar_type(info->dtype);
  STUNT_CHECK_AS(NotImplementedError, type.has_value(), path_.string(), ": tensor '", name,
                 "' has dtype ", dtype_name(info->dtype),
                 ", which LibTorch cannot hold; convert it to F16/BF16/F32 first");
  const auto shape = torch_shape(*info, path_.string());
  const auto options = at::TensorOptions().dtype(*type).device(at::kCPU);
  uint8_t* begin = data_ + header_.data_start + info->begin;
  const size_t item = c10::elementSize(*type);
  if (reinterpret_cast<uintptr_t>(begin) % item == 0) {
    // Every tensor that aliases the file keeps the mapping alive; the last one to go hands its
    // pages back (a weight an algorithm replaced no longer counts in the process's memory).
    auto keep_alive = mapping_;
    const uint64_t offset = static_cast<uint64_t>(begin - mapping_->data());
    const uint64_t length = info->end - info->begin;
    keep_alive->acquire(offset);
    return at::from_blob(
        begin, shape, [keep_alive, offset, length](void*) { keep_alive->release(offset, length); },
        options);
  }
  // Misaligned for the element type: copy into a fresh allocation.
  at::Tensor out = at::empty(shape, options);
  std::memcpy(out.data_ptr(), begin, info->end - info->begin);
  return out;
}

std::vector<NamedTensor> SafetensorsFile::tensors() const {
  std::vector<NamedTensor> out;
  out.reserve(header_.tensors.size());
  for (const auto& info : header_.tensors) out.emplace_back(info.name, tensor(info.name));
  return out;
}

namespace {

struct PreparedTensor {
  const std::string* name;
  at::Tensor data;  // contiguous, CPU
  SafetensorsTensorInfo info;
};

std::vector<PreparedTensor> prepare(const std::vector<NamedTensor>& tensors) {
  std::vector<PreparedTensor> prepared;
  prepared.reserve(tensors.size());
  std::set<std::string_view> names;
  for (const auto& [name, tensor] : tensors) {
    STUNT_CHECK(names.insert(name).second, "tensor name '", name,
                "' appears twice; safetensors needs unique names");
    STUNT_CHECK(name != "__metadata__",
                "'__metadata__' is reserved by safetensors and cannot "
                "name a tensor");
    STUNT_CHECK(tensor.defined(), "tensor '", name, "' is undefined");
    PreparedTensor p{&name, tensor.to(at::kCPU).contiguous(), {}};
    p.info.name = name;
    p.info.dtype = to_safetensors_dtype(p.data.scalar_type());
    p.info.shape = p.data.sizes().vec();
    if (p.info.dtype == SafetensorsDtype::F4 && !p.info.shape.empty()) p.info.shape.back() *= 2;
    p.info.numel = static_cast<uint64_t>(p.data.numel());
    prepared.push_back(std::move(p));
  }
  // The reference writer's order: dtype descending, then name.
  std::sort(prepared.begin(), prepared.end(), [](const auto& a, const auto& b) {
    if (a.info.dtype != b.info.dtype) return a.info.dtype > b.info.dtype;
    return *a.name < *b.name;
  });
  uint64_t offset = 0;
  for (auto& p : prepared) {
    p.info.begin = offset;
    offset += p.data.nbytes();
    p.info.end = offset;
  }
  return prepared;
}

}  // namespace

void save_safetensors(const std::filesystem::path& path, const std::vector<NamedTensor>& tensors,
                      const SafetensorsWriteOptions& options) {
  auto prepared = prepare(tensors);
  std::vector<SafetensorsTensorInfo> infos;
  infos.reserve(prepared.size());
  for (const auto& p : prepared) infos.push_back(p.info);
  const std::string header = serialize_safetensors_header(infos, options.metadata);
  const uint64_t size = header.size();
  uint8_t size_le[8];
  for (int i = 0; i < 8; ++i) size_le[i] = static_cast<uint8_t>(size >> (8 * i));

  AtomicFile file(path);
  file.write(size_le, sizeof(size_le));
  file.write(header);
  for (const auto& p : prepared) file.write(p.data.data_ptr(), p.data.nbytes());
  file.commit();
}

std::vector<std::filesystem::path> save_safetensors_sharded(const std::filesystem::path& folder,
                                                            const std::vector<NamedTensor>& tensors,
                                                            const ShardOptions& options) {
  STUNT_CHECK(options.max_shard_bytes > 0, "max_shard_bytes must be positive");
  // Split in the given order as transformers does: a tensor that would overflow the current
  // shard starts a new one; a tensor bigger than the limit gets a shard of its own.
  std::vector<std::vector<NamedTensor>> shards;
  std::vector<NamedTensor> current;
  uint64_t current_bytes = 0, total_bytes = 0;
  for (const auto& named : tensors) {
    const uint64_t bytes = named.second.defined() ? named.second.nbytes() : 0;
    total_bytes += bytes;
    if (bytes > options.max_shard_bytes) {
      shards.push_back({named});
      continue;
    }
    if (current_bytes + bytes > options.max_shard_bytes && !current.empty()) {
      shards.push_back(std::move(current));
      current.clear();
      current_bytes = 0;
    }
    current.push_back(named);
    current_bytes += bytes;
  }
  if (!current.empty() || shards.empty()) shards.push_back(std::move(current));

  std::vector<std::filesystem::path> written;
  SafetensorsWriteOptions write_options{options.metadata};
  if (shards.size() == 1) {
    written.push_back(folder / (options.stem + ".safetensors"));
    save_safetensors(written.back(), shards.front(), write_options);
    return written;
  }
  std::map<std::string, std::string> weight_map;
  for (size_t i = 0; i < shards.size(); ++i) {
    char name[64];
    std::snprintf(name, sizeof(name), "-%05zu-of-%05zu.safetensors", i + 1, shards.size());
    const std::string file_name = options.stem + name;
    written.push_back(folder / file_name);
    save_safetensors(written.back(), shards[i], write_options);
    for (const auto& named : shards[i]) weight_map[named.first] = file_name;
  }
  // transformers writes the index with indent=2 and sorted keys.
  std::string index = "{\n  \"metadata\": {\n    \"total_size\": " + std::to_string(total_bytes) +
                      "\n  },\n  \"weight_map\": {\n";
  size_t i = 0;
  for (const auto& [tensor, file] : weight_map) {
    index += str("    ", nlohmann::json(tensor).dump(-1, ' ', /*ensure_ascii=*/true), ": \"", file,
                 "\"", ++i < weight_map.size() ? ",\n" : "\n");
  }
  index += "  }\n}\n";
  written.push_back(folder / (options.stem + ".safetensors.index.json"));
  write_file_atomic(written.back(), index);
  return written;
}

}  // namespace stunt::io
