#include "detail/pipeline.h"
#include "stunt/core/error.h"

namespace stunt::io::tokenizer_detail {

using nlohmann::json;

void JsonNode::fail(const std::string& message) const {
  throw FormatError(str(file(), ": ", path_.empty() ? "(top level)" : path_, " ", message));
}

void JsonNode::expect(json::value_t type, const char* type_name) const {
  const bool ok =
      type == json::value_t::number_integer
          ? value_->is_number_integer()
          : (type == json::value_t::number_float ? value_->is_number() : value_->type() == type);
  if (!ok) fail(str("must be ", type_name, ", got ", value_->type_name()));
}

JsonNode JsonNode::at(std::string_view key) const {
  expect(json::value_t::object, "an object");
  auto it = value_->find(key);
  if (it == value_->end()) fail(str("has no member \"", key, "\""));
  return JsonNode(*it, path_.empty() ? std::string(key) : str(path_, ".", key), *file_);
}

std::optional<JsonNode> JsonNode::find(std::string_view key) const {
  expect(json::value_t::object, "an object");
  auto it = value_->find(key);
  if (it == value_->end() || it->is_null()) return std::nullopt;
  return JsonNode(*it, path_.empty() ? std::string(key) : str(path_, ".", key), *file_);
}

JsonNode JsonNode::at(size_t index) const {
  expect(json::value_t::array, "an array");
  if (index >= value_->size()) fail(str("has no element ", index));
  return JsonNode((*value_)[index], str(path_, "[", index, "]"), *file_);
}

size_t JsonNode::size() const {
  expect(json::value_t::array, "an array");
  return value_->size();
}

std::string JsonNode::as_string() const {
  expect(json::value_t::string, "a string");
  return value_->get<std::string>();
}

bool JsonNode::as_bool() const {
  expect(json::value_t::boolean, "a boolean");
  return value_->get<bool>();
}

int64_t JsonNode::as_int() const {
  if (value_->is_number_unsigned()) {
    if (value_->get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) fail("is out of range");
    return static_cast<int64_t>(value_->get<uint64_t>());
  }
  expect(json::value_t::number_integer, "an integer");
  return value_->get<int64_t>();
}

double JsonNode::as_double() const {
  expect(json::value_t::number_float, "a number");
  return value_->get<double>();
}

std::string JsonNode::get_string(std::string_view key, std::string fallback) const {
  auto node = find(key);
  return node ? node->as_string() : fallback;
}

bool JsonNode::get_bool(std::string_view key, bool fallback) const {
  auto node = find(key);
  return node ? node->as_bool() : fallback;
}

int64_t JsonNode::get_int(std::string_view key, int64_t fallback) const {
  auto node = find(key);
  return node ? node->as_int() : fallback;
}

std::string base64_decode(const JsonNode& node) {
  const std::string text = node.as_string();
  auto value_of = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  std::string out;
  out.reserve(text.size() / 4 * 3);
  uint32_t buffer = 0;
  int bits = 0;
  for (char c : text) {
    if (c == '=') break;
    const int v = value_of(c);
    if (v < 0) node.fail("is not valid base64");
    buffer = (buffer << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((buffer >> bits) & 0xff);
    }
  }
  return out;
}

}  // namespace stunt::io::tokenizer_detail
