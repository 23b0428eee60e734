#pragma once
/// Argument schemas: what each modifier accepts, checked before anything runs. Every error
/// names the recipe file, the path inside it, what was expected and how to fix it.

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "stunt/recipe/recipe.h"

namespace stunt::recipe {

class ArgSchema;

/// What Stunt does with a modifier's field. Nothing is accepted and then ignored: a field
/// either acts (some code reads it and acts on it or refuses its value with the recipe path),
/// is an old name of another field, or is known to change nothing in Stunt (and says why).
enum class FieldUse {
  /// Read by the modifier (or the one-shot schedule check); ModifierRegistry::create fails
  /// loudly if a given value is never read.
  Acts,
  /// A deprecated name: validate_recipe renames it to `note` with one warning.
  Renamed,
  /// Accepted for compatibility; changes nothing here. validate_recipe warns with `note`.
  Inert
};
const char* to_string(FieldUse use);

/// A named field of an object schema.
struct Field {
  std::string name;
  std::shared_ptr<const ArgSchema> schema;
  bool required = false;
  std::string help;
  FieldUse use = FieldUse::Acts;
  /// Renamed: the current name. Inert: why the field changes nothing.
  std::string note;
};

/// The expected shape of one argument value.
class ArgSchema {
 public:
  enum class Kind { Any, Bool, Int, Number, String, Enum, List, Object, Map, OneOf };

  static ArgSchema any();
  static ArgSchema boolean();
  static ArgSchema integer();
  static ArgSchema number();
  static ArgSchema string();
  /// One of fixed strings (case-sensitive unless `ignore_case`).
  static ArgSchema enumeration(std::vector<std::string> choices, bool ignore_case = false);
  static ArgSchema list_of(ArgSchema item);
  /// An object with known fields; other keys are errors.
  static ArgSchema object(std::vector<Field> fields);
  /// An object of free keys whose values all follow `value`.
  static ArgSchema map_of(ArgSchema value);
  static ArgSchema one_of(std::vector<ArgSchema> alternatives);
  /// A string or a list of strings (recipes' `targets`).
  static ArgSchema string_or_list();

  /// Accepts null too.
  ArgSchema& nullable();
  /// Numbers: the allowed interval (an exclusive bound is marked).
  ArgSchema& range(double min, double max, bool min_exclusive = false, bool max_exclusive = false);
  /// An extra check: returns "" when the value is fine, else the problem and its fix.
  ArgSchema& check(std::function<std::string(const Value&)> validator);

  /// Throws RecipeError "<source>: <path>: ..." when `value` does not fit.
  void validate(const Value& value, const std::string& path, const std::string& source) const;
  /// "a number in [0, 1)", "one of tensor, channel", ...
  std::string describe() const;
  Kind kind() const { return kind_; }
  const std::vector<Field>& fields() const { return fields_; }

 private:
  static ArgSchema of_kind(Kind kind);
  bool matches_shape(const Value& value) const;

  Kind kind_ = Kind::Any;
  bool nullable_ = false;
  bool ignore_case_ = false;
  std::vector<std::string> choices_;
  std::vector<Field> fields_;
  std::vector<ArgSchema> alternatives_;
  std::shared_ptr<const ArgSchema> item_;
  std::optional<double> min_, max_;
  bool min_exclusive_ = false, max_exclusive_ = false;
  std::vector<std::function<std::string(const Value&)>> checks_;
};

/// Shorthand for object fields.
Field field(std::string name, ArgSchema schema, std::string help = "");
Field required_field(std::string name, ArgSchema schema, std::string help = "");
/// A deprecated key that means what `current` means now.
Field renamed_field(std::string name, std::string current, ArgSchema schema);
/// A key that older releases used and that changes nothing in Stunt; `why` says so to the user.
Field inert_field(std::string name, ArgSchema schema, std::string why);

/// The closest of `candidates` to `word` by edit distance, or "" when none is close.
std::string closest_match(const std::string& word, const std::vector<std::string>& candidates);

}  // namespace stunt::recipe
