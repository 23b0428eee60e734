#pragma once
/// The safetensors container format, without LibTorch: dtypes, header parsing and validation.
/// Every rule of the format is checked here before a reader allocates or reads tensor data.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace stunt::io {

/// safetensors dtypes, declared in the order of the reference implementation's enum: its
/// writer sorts tensors by this order (descending), then by name.
enum class SafetensorsDtype : uint8_t {
  BOOL,
  F4,
  F6_E2M3,
  F6_E3M2,
  U8,
  I8,
  F8_E5M2,
  F8_E4M3,
  F8_E8M0,
  F8_E4M3FNUZ,
  F8_E5M2FNUZ,
  I16,
  U16,
  F16,
  BF16,
  I32,
  U32,
  F32,
  C64,
  F64,
  I64,
  U64,
};

/// "F32", "BF16", ... as written in headers.
const char* dtype_name(SafetensorsDtype dtype);
/// Bits per element: 4 for F4, 6 for the F6 types, 8 * bytes otherwise.
int dtype_bits(SafetensorsDtype dtype);
std::optional<SafetensorsDtype> dtype_from_name(std::string_view name);
/// All dtype names, comma-separated (for error messages and `compress list formats`).
std::string all_dtype_names();

/// One tensor entry of a header. Offsets are relative to the start of the data buffer.
struct SafetensorsTensorInfo {
  std::string name;
  SafetensorsDtype dtype;
  std::vector<int64_t> shape;
  uint64_t begin = 0;
  uint64_t end = 0;
  uint64_t numel = 1;
};

/// A parsed and validated header.
struct SafetensorsHeader {
  /// N, the JSON header's length in bytes.
  uint64_t header_size = 0;
  /// Absolute file offset of the data buffer (8 + N).
  uint64_t data_start = 0;
  uint64_t data_size = 0;
  /// Tensors in data-offset order.
  std::vector<SafetensorsTensorInfo> tensors;
  std::map<std::string, std::string> metadata;

  /// The entry named `name`, or nullptr.
  const SafetensorsTensorInfo* find(std::string_view name) const;
};

/// safetensors' own limit on the JSON header (bytes).
constexpr uint64_t kMaxSafetensorsHeaderSize = 100'000'000;

/// Parses and validates the header of a safetensors file of `file_size` bytes whose first
/// `available` bytes are at `bytes` (at least 8 + N of them are needed). `source` names the file
/// in errors. Throws FormatError naming the file and the broken rule.
SafetensorsHeader parse_safetensors_header(const uint8_t* bytes, uint64_t available,
                                           uint64_t file_size, const std::string& source);

/// Serialises a header the way the reference writer does: `__metadata__` first, then the
/// tensors in the given order, compact JSON, padded with spaces to a multiple of 8 bytes.
std::string serialize_safetensors_header(const std::vector<SafetensorsTensorInfo>& tensors,
                                         const std::map<std::string, std::string>& metadata);

}  // namespace stunt::io
