#pragma once
/// GGUF (llama.cpp's model file, version 2 and 3): metadata, tensor directory, and tensors
/// dequantized to float32. Every size and offset is checked against the file before use.

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <variant>
#include <vector>

namespace stunt {
class MappedFile;
}

namespace stunt::io {

/// ggml tensor types Stunt knows by name (the numbering is llama.cpp's).
enum class GgmlType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  BF16 = 30,
};

/// "F32", "Q4_1", ...; "type <n>" for numbers Stunt does not know.
std::string ggml_type_name(uint32_t type);

/// A metadata value: scalars, strings, or arrays of them.
struct GgufValue {
  using Array = std::vector<GgufValue>;
  std::variant<uint64_t, int64_t, double, bool, std::string, std::shared_ptr<Array>> value;

  /// "integer", "float", "bool", "string" or "array".
  std::string kind() const;
  bool is_integer() const;
  int64_t integer() const;  // any integer type; throws FormatError otherwise
  double number() const;    // integer or float
  const std::string& string() const;
  const Array& array() const;
};

struct GgufTensorInfo {
  std::string name;
  /// Torch order (slowest dimension first): GGUF's ne[] reversed.
  std::vector<int64_t> shape;
  uint32_t type = 0;
  /// Absolute offset of the data in the file, and its size in bytes.
  uint64_t offset = 0;
  uint64_t nbytes = 0;
};

class GgufFile {
 public:
  /// Maps and validates `path`: magic, version, metadata, tensor directory and data bounds.
  static std::shared_ptr<GgufFile> open(const std::filesystem::path& path);

  const std::filesystem::path& path() const { return path_; }
  uint32_t version() const { return version_; }
  const std::map<std::string, GgufValue>& metadata() const { return metadata_; }
  /// The metadata value `key`, or nullptr.
  const GgufValue* find(const std::string& key) const;
  /// The value `key` as an integer / a string; FormatError naming the file, the key and what
  /// it holds when it is missing or of another type.
  int64_t integer(const std::string& key) const;
  std::string string(const std::string& key) const;
  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const GgufTensorInfo* find_tensor(const std::string& name) const;

  /// The tensor `name` as float32, dequantized (F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0).
  /// Other types throw NotImplementedError naming the tensor and its type.
  at::Tensor dequantize(const std::string& name) const;

 private:
  GgufFile() = default;
  std::filesystem::path path_;
  std::shared_ptr<MappedFile> mapping_;
  uint32_t version_ = 0;
  std::map<std::string, GgufValue> metadata_;
  std::vector<GgufTensorInfo> tensors_;
  std::map<std::string, size_t> tensor_index_;
};

}  // namespace stunt::io
