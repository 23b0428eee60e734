#pragma once
// Internals shared by the recipe parsers.

#include <string>
#include <string_view>

#include "stunt/core/error.h"
#include "stunt/recipe/recipe.h"

namespace stunt::recipe::detail {

/// YAML mappings carrying a tag (SparseML's `!GMPruningModifier`) become objects holding the
/// tag under this key, which no real recipe key can collide with (it starts with a NUL).
inline const std::string kTagKey = std::string("\0tag", 4);

/// Parses JSON or YAML text into a Value; YAML scalars are typed by the YAML 1.2 core schema
/// (quoted scalars stay strings).
Value parse_document(std::string_view text, const std::string& source);

bool is_sparseml_syntax(const Value& root);
Recipe parse_llmcompressor(const Value& root, const std::string& source,
                           const RecipeArgs& recipe_args);
Recipe parse_sparseml(const Value& root, const std::string& source, const RecipeArgs& recipe_args);

/// "a.b" + "c" -> "a.b.c"; list indices as "a.b[2]".
inline std::string join_path(const std::string& parent, const std::string& key) {
  return parent.empty() ? key : parent + "." + key;
}

template <typename... Args>
[[noreturn]] void fail(const std::string& source, const std::string& path, const Args&... args) {
  throw RecipeError(str(source, ": ", path.empty() ? "" : path + ": ", args...));
}

/// JSON text of a value for messages and echoes. Recipe text may hold bytes that are not UTF-8
/// (YAML passes them through); they become U+FFFD rather than an exception from the serializer.
inline std::string dump_text(const Value& value) {
  return value.dump(-1, ' ', false, Value::error_handler_t::replace);
}

/// A recipe's `version`: a string or a number ("1.1.0", 1.1); anything else is refused.
std::string version_text(const Value& value, const std::string& source);

bool ends_with(std::string_view text, std::string_view suffix);
bool contains(std::string_view text, std::string_view part);

}  // namespace stunt::recipe::detail
