#include "stunt/io/safetensors_format.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <nlohmann/json.hpp>

#include "stunt/core/error.h"
#include "stunt/io/json_keys.h"

namespace stunt::io {
namespace {

struct DtypeEntry {
  SafetensorsDtype dtype;
  const char* name;
  int bits;
};

constexpr std::array<DtypeEntry, 22> kDtypes = {{
    {SafetensorsDtype::BOOL, "BOOL", 8},
    {SafetensorsDtype::F4, "F4", 4},
    {SafetensorsDtype::F6_E2M3, "F6_E2M3", 6},
    {SafetensorsDtype::F6_E3M2, "F6_E3M2", 6},
    {SafetensorsDtype::U8, "U8", 8},
    {SafetensorsDtype::I8, "I8", 8},
    {SafetensorsDtype::F8_E5M2, "F8_E5M2", 8},
    {SafetensorsDtype::F8_E4M3, "F8_E4M3", 8},
    {SafetensorsDtype::F8_E8M0, "F8_E8M0", 8},
    {SafetensorsDtype::F8_E4M3FNUZ, "F8_E4M3FNUZ", 8},
    {SafetensorsDtype::F8_E5M2FNUZ, "F8_E5M2FNUZ", 8},
    {SafetensorsDtype::I16, "I16", 16},
    {SafetensorsDtype::U16, "U16", 16},
    {SafetensorsDtype::F16, "F16", 16},
    {SafetensorsDtype::BF16, "BF16", 16},
    {SafetensorsDtype::I32, "I32", 32},
    {SafetensorsDtype::U32, "U32", 32},
    {SafetensorsDtype::F32, "F32", 32},
    {SafetensorsDtype::C64, "C64", 64},
    {SafetensorsDtype::F64, "F64", 64},
    {SafetensorsDtype::I64, "I64", 64},
    {SafetensorsDtype::U64, "U64", 64},
}};

const DtypeEntry& entry(SafetensorsDtype dtype) {
  const auto index = static_cast<size_t>(dtype);
  STUNT_ASSERT(index < kDtypes.size() && kDtypes[index].dtype == dtype);
  return kDtypes[index];
}

uint64_t read_u64_le(const uint8_t* p) {
  uint64_t value = 0;
  for (int i = 7; i >= 0; --i) value = (value << 8) | p[i];
  return value;
}

uint64_t to_u64(const nlohmann::json& value, const std::string& source, const std::string& what) {
  if (value.is_number_unsigned()) return value.get<uint64_t>();
  if (value.is_number_integer() && value.get<int64_t>() >= 0) return value.get<uint64_t>();
  throw FormatError(
      str(source, ": ", what, " must be a non-negative integer, found ", value.dump()));
}

SafetensorsTensorInfo parse_entry(const std::string& name, const nlohmann::json& value,
                                  const std::string& source) {
  const std::string where = str(source, ": tensor '", name, "'");
  STUNT_CHECK_AS(FormatError, value.is_object(), where,
                 ": entry must be an object with dtype, shape and data_offsets, found ",
                 value.type_name());
  for (const char* key : {"dtype", "shape", "data_offsets"}) {
    STUNT_CHECK_AS(FormatError, value.contains(key), where, ": missing '", key, "'");
  }
  SafetensorsTensorInfo info;
  info.name = name;
  const auto& dtype = value["dtype"];
  STUNT_CHECK_AS(FormatError, dtype.is_string(), where, ": dtype must be a string");
  auto parsed = dtype_from_name(dtype.get<std::string>());
  STUNT_CHECK_AS(FormatError, parsed.has_value(), where, ": unknown dtype '",
                 dtype.get<std::string>(), "'; expected one of ", all_dtype_names());
  info.dtype = *parsed;

  const auto& shape = value["shape"];
  STUNT_CHECK_AS(FormatError, shape.is_array(), where, ": shape must be an array of integers");
  info.numel = 1;
  bool overflow = false, has_zero = false;
  for (const auto& dim : shape) {
    const uint64_t d = to_u64(dim, source, str("tensor '", name, "': each dimension of shape"));
    STUNT_CHECK_AS(FormatError, d <= static_cast<uint64_t>(INT64_MAX), where, ": dimension ", d,
                   " is too large");
    info.shape.push_back(static_cast<int64_t>(d));
    has_zero |= d == 0;
    if (d != 0 && info.numel > UINT64_MAX / 8 / d) overflow = true;
    if (!overflow) info.numel *= d;
  }
  if (has_zero) info.numel = 0;
  STUNT_CHECK_AS(FormatError, !overflow || has_zero, where, ": shape ", shape.dump(),
                 " has more elements than any file can hold");

  const auto& offsets = value["data_offsets"];
  STUNT_CHECK_AS(FormatError, offsets.is_array() && offsets.size() == 2, where,
                 ": data_offsets must be [begin, end], found ", offsets.dump());
  info.begin = to_u64(offsets[0], source, str("tensor '", name, "': data_offsets[0]"));
  info.end = to_u64(offsets[1], source, str("tensor '", name, "': data_offsets[1]"));
  STUNT_CHECK_AS(FormatError, info.begin <= info.end, where, ": data_offsets [", info.begin, ", ",
                 info.end, "] end before they begin");

  const int bits = dtype_bits(info.dtype);
  const uint64_t total_bits = info.numel * static_cast<uint64_t>(bits);
  STUNT_CHECK_AS(FormatError, total_bits % 8 == 0, where, ": ", info.numel, " elements of ",
                 dtype_name(info.dtype), " (", bits, " bits each) do not fill whole bytes");
  STUNT_CHECK_AS(FormatError, info.end - info.begin == total_bits / 8, where, ": data_offsets [",
                 info.begin, ", ", info.end, ") hold ", info.end - info.begin, " bytes but shape ",
                 shape.dump(), " of ", dtype_name(info.dtype), " needs ", total_bits / 8);
  return info;
}

}  // namespace

const char* dtype_name(SafetensorsDtype dtype) { return entry(dtype).name; }

int dtype_bits(SafetensorsDtype dtype) { return entry(dtype).bits; }

std::optional<SafetensorsDtype> dtype_from_name(std::string_view name) {
  for (const auto& e : kDtypes) {
    if (name == e.name) return e.dtype;
  }
  return std::nullopt;
}

std::string all_dtype_names() {
  std::string names;
  for (const auto& e : kDtypes) names += (names.empty() ? "" : ", ") + std::string(e.name);
  return names;
}

const SafetensorsTensorInfo* SafetensorsHeader::find(std::string_view name) const {
  for (const auto& t : tensors) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

SafetensorsHeader parse_safetensors_header(const uint8_t* bytes, uint64_t available,
                                           uint64_t file_size, const std::string& source) {
  STUNT_CHECK_AS(FormatError, file_size >= 8 && available >= 8, source, ": file is ", file_size,
                 " bytes, too short to be safetensors (it needs an 8-byte header size)");
  SafetensorsHeader header;
  header.header_size = read_u64_le(bytes);
  STUNT_CHECK_AS(FormatError, header.header_size <= kMaxSafetensorsHeaderSize, source,
                 ": header size ", header.header_size, " exceeds the safetensors limit of ",
                 kMaxSafetensorsHeaderSize, " bytes; the file is corrupt or not safetensors");
  STUNT_CHECK_AS(FormatError, header.header_size <= file_size - 8, source, ": header size ",
                 header.header_size, " runs past the end of the ", file_size,
                 "-byte file; the file is truncated or not safetensors");
  STUNT_ASSERT(available >= 8 + header.header_size, "caller must provide the whole header");
  header.data_start = 8 + header.header_size;
  header.data_size = file_size - header.data_start;

  const char* text = reinterpret_cast<const char*>(bytes + 8);
  const std::string_view json_text(text, header.header_size);
  const size_t first = json_text.find_first_not_of(" \t\r\n");
  STUNT_CHECK_AS(
      FormatError, first != std::string_view::npos && json_text[first] == '{', source,
      ": the header must be a JSON object starting with '{'; the file is not safetensors");

  if (const auto key = find_duplicate_json_key(json_text)) {
    throw FormatError(str(source, ": the safetensors header names '", printable(*key),
                          "' twice; every tensor name must be unique"));
  }
  nlohmann::json root;
  try {
    root = nlohmann::json::parse(json_text.begin(), json_text.end());
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(str(source, ": the header is not valid JSON (", printable(e.what()), ")"));
  }
  STUNT_CHECK_AS(FormatError, root.is_object(), source, ": the header must be a JSON object");

  for (auto it = root.begin(); it != root.end(); ++it) {
    if (it.key() == "__metadata__") {
      STUNT_CHECK_AS(FormatError, it.value().is_object(), source,
                     ": __metadata__ must be an object of string to string");
      for (auto m = it.value().begin(); m != it.value().end(); ++m) {
        STUNT_CHECK_AS(FormatError, m.value().is_string(), source, ": __metadata__['", m.key(),
                       "'] must be a string, found ", m.value().type_name());
        header.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    header.tensors.push_back(parse_entry(it.key(), it.value(), source));
  }

  std::sort(header.tensors.begin(), header.tensors.end(), [](const auto& a, const auto& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t expected_begin = 0;
  for (const auto& t : header.tensors) {
    STUNT_CHECK_AS(FormatError, t.begin >= expected_begin, source, ": tensor '", t.name,
                   "' at data_offsets [", t.begin, ", ", t.end,
                   ") overlaps the previous tensor, which ends at ", expected_begin);
    STUNT_CHECK_AS(FormatError, t.begin == expected_begin, source, ": a hole of ",
                   t.begin - expected_begin, " bytes before tensor '", t.name,
                   "'; offsets must tile the data buffer");
    expected_begin = t.end;
  }
  STUNT_CHECK_AS(
      FormatError, expected_begin == header.data_size, source, ": tensors cover ", expected_begin,
      " bytes but the data buffer holds ", header.data_size,
      expected_begin < header.data_size ? " (trailing bytes)" : " (the file is truncated)");
  return header;
}

std::string serialize_safetensors_header(const std::vector<SafetensorsTensorInfo>& tensors,
                                         const std::map<std::string, std::string>& metadata) {
  // Built by hand so that key order matches the reference writer byte for byte.
  std::string out = "{";
  bool first = true;
  if (!metadata.empty()) {
    out += "\"__metadata__\":" + nlohmann::json(metadata).dump();
    first = false;
  }
  for (const auto& t : tensors) {
    if (!first) out += ",";
    first = false;
    out += nlohmann::json(t.name).dump();
    out += ":{\"dtype\":\"";
    out += dtype_name(t.dtype);
    out += "\",\"shape\":" + nlohmann::json(t.shape).dump();
    out += str(",\"data_offsets\":[", t.begin, ",", t.end, "]}");
  }
  out += "}";
  // The reference pads with spaces so that the data buffer starts 8-byte aligned.
  out.append((8 - out.size() % 8) % 8, ' ');
  return out;
}

}  // namespace stunt::io
