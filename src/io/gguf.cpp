#include "stunt/io/gguf.h"

#include "stunt/io/checkpoint.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/util/Half.h>

#include <cstring>
#include <limits>

#include "stunt/core/error.h"
#include "stunt/core/mapped_file.h"

namespace stunt::io {

namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" little-endian
constexpr int kMaxDims = 4;
constexpr int kMaxArrayDepth = 4;

struct TypeLayout {
  int64_t block;  // elements per block
  int64_t bytes;  // bytes per block
};

// Block layouts from ggml; zero for types whose size Stunt does not know.
TypeLayout layout_of(uint32_t type) {
  switch (static_cast<GgmlType>(type)) {
    case GgmlType::F32:
      return {1, 4};
    case GgmlType::F16:
      return {1, 2};
    case GgmlType::BF16:
      return {1, 2};
    case GgmlType::Q4_0:
      return {32, 18};
    case GgmlType::Q4_1:
      return {32, 20};
    case GgmlType::Q5_0:
      return {32, 22};
    case GgmlType::Q5_1:
      return {32, 24};
    case GgmlType::Q8_0:
      return {32, 34};
    case GgmlType::Q8_1:
      return {32, 36};
    case GgmlType::Q2_K:
      return {256, 84};
    case GgmlType::Q3_K:
      return {256, 110};
    case GgmlType::Q4_K:
      return {256, 144};
    case GgmlType::Q5_K:
      return {256, 176};
    case GgmlType::Q6_K:
      return {256, 210};
    case GgmlType::Q8_K:
      return {256, 292};
  }
  return {0, 0};
}

// Sequential little-endian reads that never pass the end of the header region.
class Reader {
 public:
  Reader(const uint8_t* data, uint64_t size, std::string source)
      : data_(data), size_(size), source_(std::move(source)) {}

  template <typename T>
  T read(const char* what) {
    need(sizeof(T), what);
    T value;
    std::memcpy(&value, data_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return value;
  }

  std::string string(const char* what) {
    const uint64_t length = read<uint64_t>(what);
    need(length, what);
    std::string out(reinterpret_cast<const char*>(data_ + pos_), length);
    pos_ += length;
    return out;
  }

  void need(uint64_t bytes, const char* what) const {
    if (bytes > size_ - pos_) {
      throw FormatError(str(source_, ": truncated at byte ", pos_, " while reading ", what, " (",
                            bytes, " bytes needed, ", size_ - pos_, " left)"));
    }
  }

  uint64_t position() const { return pos_; }
  uint64_t remaining() const { return size_ - pos_; }
  const std::string& source() const { return source_; }

 private:
  const uint8_t* data_;
  uint64_t size_;
  uint64_t pos_ = 0;
  std::string source_;
};

// The fewest bytes a metadata value of `type` takes (strings and arrays: their length fields).
uint64_t encoded_size(uint32_t type) {
  switch (type) {
    case 0:
    case 1:
    case 7:
      return 1;
    case 2:
    case 3:
      return 2;
    case 4:
    case 5:
    case 6:
      return 4;
    case 8:
    case 10:
    case 11:
    case 12:
      return 8;
    case 9:
      return 12;
    default:
      return 1;  // an unknown type fails when its first item is read
  }
}

GgufValue read_value(Reader& r, uint32_t type, const std::string& key, int depth) {
  GgufValue v;
  switch (type) {
    case 0:
      v.value = uint64_t{r.read<uint8_t>("a uint8")};
      break;
    case 1:
      v.value = int64_t{r.read<int8_t>("an int8")};
      break;
    case 2:
      v.value = uint64_t{r.read<uint16_t>("a uint16")};
      break;
    case 3:
      v.value = int64_t{r.read<int16_t>("an int16")};
      break;
    case 4:
      v.value = uint64_t{r.read<uint32_t>("a uint32")};
      break;
    case 5:
      v.value = int64_t{r.read<int32_t>("an int32")};
      break;
    case 6:
      v.value = double{r.read<float>("a float32")};
      break;
    case 7: {
      const uint8_t b = r.read<uint8_t>("a bool");
      STUNT_CHECK_AS(FormatError, b <= 1, r.source(), ": metadata ", key, " holds bool byte ",
                     int{b});
      v.value = b == 1;
      break;
    }
    case 8:
      v.value = r.string("a string");
      break;
    case 9: {
      STUNT_CHECK_AS(FormatError, depth < kMaxArrayDepth, r.source(), ": metadata ", key,
                     " nests arrays deeper than ", kMaxArrayDepth);
      const uint32_t item_type = r.read<uint32_t>("an array type");
      const uint64_t count = r.read<uint64_t>("an array length");
      // A count beyond what the bytes left can encode is corrupt; it is refused before any
      // allocation, and the reservation is capped besides.
      const uint64_t min_size = encoded_size(item_type);
      STUNT_CHECK_AS(FormatError, count <= r.remaining() / min_size, r.source(), ": metadata ", key,
                     " claims ", count, " array items but only ", r.remaining(), " bytes remain");
      auto items = std::make_shared<GgufValue::Array>();
      items->reserve(std::min<uint64_t>(count, uint64_t{1} << 16));
      for (uint64_t i = 0; i < count; ++i)
        items->push_back(read_value(r, item_type, key, depth + 1));
      v.value = std::move(items);
      break;
    }
    case 10:
      v.value = r.read<uint64_t>("a uint64");
      break;
    case 11:
      v.value = r.read<int64_t>("an int64");
      break;
    case 12:
      v.value = r.read<double>("a float64");
      break;
    default:
      throw FormatError(str(r.source(), ": metadata ", key, " has unknown value type ", type));
  }
  return v;
}

float half_to_float(const uint8_t* p) {
  uint16_t bits;
  std::memcpy(&bits, p, 2);
  return static_cast<float>(c10::Half(bits, c10::Half::from_bits()));
}

// One block of 32 quantized values → floats, per ggml's reference dequantization.
void dequantize_block(GgmlType type, const uint8_t* b, float* out) {
  switch (type) {
    case GgmlType::Q8_0: {
      const float d = half_to_float(b);
      for (int j = 0; j < 32; ++j) out[j] = d * static_cast<int8_t>(b[2 + j]);
      return;
    }
    case GgmlType::Q4_0: {
      const float d = half_to_float(b);
      const uint8_t* qs = b + 2;
      for (int j = 0; j < 16; ++j) {
        out[j] = d * ((qs[j] & 0x0F) - 8);
        out[j + 16] = d * ((qs[j] >> 4) - 8);
      }
      return;
    }
    case GgmlType::Q4_1: {
      const float d = half_to_float(b);
      const float m = half_to_float(b + 2);
      const uint8_t* qs = b + 4;
      for (int j = 0; j < 16; ++j) {
        out[j] = d * (qs[j] & 0x0F) + m;
        out[j + 16] = d * (qs[j] >> 4) + m;
      }
      return;
    }
    case GgmlType::Q5_0:
    case GgmlType::Q5_1: {
      const bool has_min = type == GgmlType::Q5_1;
      const float d = half_to_float(b);
      const float m = has_min ? half_to_float(b + 2) : 0.0f;
      uint32_t qh;
      std::memcpy(&qh, b + (has_min ? 4 : 2), 4);
      const uint8_t* qs = b + (has_min ? 8 : 6);
      const int offset = has_min ? 0 : 16;
      for (int j = 0; j < 16; ++j) {
        const int high0 = ((qh >> j) << 4) & 0x10;
        const int high1 = (qh >> (j + 12)) & 0x10;
        out[j] = d * (((qs[j] & 0x0F) | high0) - offset) + m;
        out[j + 16] = d * (((qs[j] >> 4) | high1) - offset) + m;
      }
      return;
    }
    default:
      break;
  }
  throw InternalError("dequantize_block called for an unsupported type");
}

}  // namespace

std::string ggml_type_name(uint32_t type) {
  switch (static_cast<GgmlType>(type)) {
    case GgmlType::F32:
      return "F32";
    case GgmlType::F16:
      return "F16";
    case GgmlType::BF16:
      return "BF16";
    case GgmlType::Q4_0:
      return "Q4_0";
    case GgmlType::Q4_1:
      return "Q4_1";
    case GgmlType::Q5_0:
      return "Q5_0";
    case GgmlType::Q5_1:
      return "Q5_1";
    case GgmlType::Q8_0:
      return "Q8_0";
    case GgmlType::Q8_1:
      return "Q8_1";
    case GgmlType::Q2_K:
      return "Q2_K";
    case GgmlType::Q3_K:
      return "Q3_K";
    case GgmlType::Q4_K:
      return "Q4_K";
    case GgmlType::Q5_K:
      return "Q5_K";
    case GgmlType::Q6_K:
      return "Q6_K";
    case GgmlType::Q8_K:
      return "Q8_K";
  }
  return "type " + std::to_string(type);
}

std::string GgufValue::kind() const {
  switch (value.index()) {
    case 0:
    case 1:
      return "integer";
    case 2:
      return "float";
    case 3:
      return "bool";
    case 4:
      return "string";
    default:
      return "array";
  }
}

bool GgufValue::is_integer() const {
  return std::holds_alternative<uint64_t>(value) || std::holds_alternative<int64_t>(value);
}

int64_t GgufValue::integer() const {
  if (const auto* u = std::get_if<uint64_t>(&value)) {
    STUNT_CHECK_AS(FormatError, *u <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()),
                   "GGUF metadata integer ", *u, " is out of range");
    return static_cast<int64_t>(*u);
  }
  if (const auto* i = std::get_if<int64_t>(&value)) return *i;
  throw FormatError("GGUF metadata value is not an integer (a " + kind() + ")");
}

double GgufValue::number() const {
  if (const auto* d = std::get_if<double>(&value)) return *d;
  return static_cast<double>(integer());
}

const std::string& GgufValue::string() const {
  if (const auto* s = std::get_if<std::string>(&value)) return *s;
  throw FormatError("GGUF metadata value is not a string (a " + kind() + ")");
}

const GgufValue::Array& GgufValue::array() const {
  if (const auto* a = std::get_if<std::shared_ptr<Array>>(&value)) return **a;
  throw FormatError("GGUF metadata value is not an array (a " + kind() + ")");
}

std::shared_ptr<GgufFile> GgufFile::open(const std::filesystem::path& path) {
  std::shared_ptr<GgufFile> file(new GgufFile());
  file->path_ = path;
  file->mapping_ = MappedFile::open(path);
  const uint64_t size = file->mapping_->size();
  Reader r(file->mapping_->data(), size, path.string());
  STUNT_CHECK_AS(FormatError, size >= 4 && r.read<uint32_t>("the magic") == kMagic, path.string(),
                 ": not a GGUF file (it does not start with \"GGUF\")");
  file->version_ = r.read<uint32_t>("the version");
  STUNT_CHECK_AS(FormatError, file->version_ == 2 || file->version_ == 3, path.string(),
                 ": GGUF version ", file->version_, " is not supported; expected 2 or 3");
  const uint64_t tensor_count = r.read<uint64_t>("the tensor count");
  const uint64_t kv_count = r.read<uint64_t>("the metadata count");
  STUNT_CHECK_AS(FormatError, kv_count <= r.remaining() && tensor_count <= r.remaining(),
                 path.string(), ": header claims ", kv_count, " metadata entries and ",
                 tensor_count, " tensors, more than the file can hold");
  for (uint64_t i = 0; i < kv_count; ++i) {
    std::string key = r.string("a metadata key");
    const uint32_t type = r.read<uint32_t>("a metadata type");
    GgufValue value = read_value(r, type, key, 0);
    STUNT_CHECK_AS(FormatError, file->metadata_.emplace(key, std::move(value)).second,
                   path.string(), ": metadata key ", key, " appears twice");
  }
  uint64_t alignment = 32;
  if (const GgufValue* a = file->find("general.alignment")) {
    const int64_t value = a->integer();
    STUNT_CHECK_AS(FormatError, value > 0 && value <= 65536 && (value & (value - 1)) == 0,
                   path.string(), ": general.alignment = ", value, " is not a power of two");
    alignment = static_cast<uint64_t>(value);
  }
  for (uint64_t i = 0; i < tensor_count; ++i) {
    GgufTensorInfo info;
    info.name = r.string("a tensor name");
    const uint32_t dims = r.read<uint32_t>("a tensor's dimension count");
    STUNT_CHECK_AS(FormatError, dims >= 1 && dims <= kMaxDims, path.string(), ": tensor ",
                   info.name, " has ", dims, " dimensions; GGUF allows 1 to ", kMaxDims);
    uint64_t numel = 1;
    for (uint32_t d = 0; d < dims; ++d) {
      const uint64_t extent = r.read<uint64_t>("a tensor dimension");
      STUNT_CHECK_AS(
          FormatError,
          extent > 0 && extent <= (uint64_t{1} << 40) && numel <= (uint64_t{1} << 40) / extent,
          path.string(), ": tensor ", info.name, " has an implausible shape");
      numel *= extent;
      info.shape.insert(info.shape.begin(), static_cast<int64_t>(extent));
    }
    info.type = r.read<uint32_t>("a tensor type");
    info.offset = r.read<uint64_t>("a tensor offset");
    const TypeLayout layout = layout_of(info.type);
    if (layout.block > 0) {
      STUNT_CHECK_AS(FormatError, info.shape.back() % layout.block == 0, path.string(), ": tensor ",
                     info.name, " has rows of ", info.shape.back(), " values, not a multiple of ",
                     ggml_type_name(info.type), "'s block of ", layout.block);
      info.nbytes = numel / layout.block * layout.bytes;
    }
    STUNT_CHECK_AS(FormatError,
                   file->tensor_index_.emplace(info.name, file->tensors_.size()).second,
                   path.string(), ": tensor ", info.name, " appears twice");
    file->tensors_.push_back(std::move(info));
  }
  const uint64_t data_start = (r.position() + alignment - 1) / alignment * alignment;
  for (GgufTensorInfo& info : file->tensors_) {
    STUNT_CHECK_AS(FormatError, info.offset % alignment == 0, path.string(), ": tensor ", info.name,
                   " starts at offset ", info.offset, ", not aligned to ", alignment);
    STUNT_CHECK_AS(FormatError,
                   data_start <= size && info.offset <= size - data_start &&
                       info.nbytes <= size - data_start - info.offset,
                   path.string(), ": tensor ", info.name, " (", info.nbytes, " bytes at offset ",
                   info.offset, ") lies beyond the end of the file; the file is truncated");
    info.offset += data_start;
  }
  return file;
}

const GgufValue* GgufFile::find(const std::string& key) const {
  auto it = metadata_.find(key);
  return it == metadata_.end() ? nullptr : &it->second;
}

int64_t GgufFile::integer(const std::string& key) const {
  const GgufValue* value = find(key);
  STUNT_CHECK_AS(FormatError, value != nullptr, path_.string(), ": metadata ", key, " is missing");
  STUNT_CHECK_AS(FormatError, value->is_integer(), path_.string(), ": metadata ", key, " holds a ",
                 value->kind(), "; expected an integer");
  return value->integer();
}

std::string GgufFile::string(const std::string& key) const {
  const GgufValue* value = find(key);
  STUNT_CHECK_AS(FormatError, value != nullptr, path_.string(), ": metadata ", key, " is missing");
  STUNT_CHECK_AS(FormatError, std::holds_alternative<std::string>(value->value), path_.string(),
                 ": metadata ", key, " holds a ", value->kind(), "; expected a string");
  return value->string();
}

const GgufTensorInfo* GgufFile::find_tensor(const std::string& name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

at::Tensor GgufFile::dequantize(const std::string& name) const {
  const GgufTensorInfo* info = find_tensor(name);
  STUNT_CHECK(info != nullptr, path_.string(), ": no tensor named ", name);
  const uint8_t* data = mapping_->data() + info->offset;
  const auto type = static_cast<GgmlType>(info->type);
  at::Tensor out = at::empty(info->shape, at::kFloat);
  float* dst = out.data_ptr<float>();
  const int64_t numel = out.numel();
  switch (type) {
    case GgmlType::F32:
      std::memcpy(dst, data, numel * 4);
      return out;
    case GgmlType::F16:
      for (int64_t i = 0; i < numel; ++i) dst[i] = half_to_float(data + 2 * i);
      return out;
    case GgmlType::BF16:
      for (int64_t i = 0; i < numel; ++i) {
        uint16_t bits;
        std::memcpy(&bits, data + 2 * i, 2);
        const uint32_t wide = uint32_t{bits} << 16;
        std::memcpy(dst + i, &wide, 4);
      }
      return out;
    case GgmlType::Q4_0:
    case GgmlType::Q4_1:
    case GgmlType::Q5_0:
    case GgmlType::Q5_1:
    case GgmlType::Q8_0: {
      const TypeLayout layout = layout_of(info->type);
      const int64_t blocks = numel / layout.block;
      at::parallel_for(0, blocks, 1024, [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) {
          dequantize_block(type, data + i * layout.bytes, dst + i * layout.block);
        }
      });
      return out;
    }
    default:
      break;
  }
  throw NotImplementedError(str(path_.string(), ": tensor ", name, " is ",
                                ggml_type_name(info->type),
                                ", which Stunt cannot dequantize yet; supported: F32, F16, BF16, "
                                "Q4_0, Q4_1, Q5_0, Q5_1, Q8_0"));
}

namespace {

// A GGUF file as a checkpoint under llama.cpp's own tensor names.
class GgufFileCheckpoint final : public Checkpoint {
 public:
  explicit GgufFileCheckpoint(std::shared_ptr<GgufFile> file)
      : Checkpoint(file->path()), file_(std::move(file)) {
    for (const GgufTensorInfo& info : file_->tensors()) {
      TensorEntry entry;
      entry.name = info.name;
      entry.dtype = ggml_type_name(info.type);
      entry.shape = info.shape;
      entry.numel = 1;
      for (int64_t d : info.shape) entry.numel *= static_cast<uint64_t>(d);
      entry.nbytes = info.nbytes;
      entry.file = file_->path();
      entries_.push_back(std::move(entry));
    }
  }
  CheckpointFormat format() const override { return CheckpointFormat::Gguf; }
  const std::vector<TensorEntry>& entries() const override { return entries_; }
  at::Tensor load(const std::string& name) const override { return file_->dequantize(name); }

 private:
  std::shared_ptr<GgufFile> file_;
  std::vector<TensorEntry> entries_;
};

}  // namespace

std::unique_ptr<Checkpoint> open_gguf(const std::filesystem::path& path) {
  return std::make_unique<GgufFileCheckpoint>(GgufFile::open(path));
}

}  // namespace stunt::io
