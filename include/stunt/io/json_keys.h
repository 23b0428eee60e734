#pragma once
/// Duplicate keys in JSON: nlohmann keeps the last of them silently, and its callback parser
/// is quadratic in the number of keys, so a fast SAX pass looks for them first.

#include <optional>
#include <string>
#include <string_view>

namespace stunt::io {

/// The first key that appears twice in one object of `json_text`, or nullopt (also when the
/// text is not valid JSON: the parser that follows reports that).
std::optional<std::string> find_duplicate_json_key(std::string_view json_text);

}  // namespace stunt::io
