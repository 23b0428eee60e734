#include "stunt/recipe/schema.h"

#include <algorithm>
#include <cctype>
#include <cmath>

#include "detail/recipe_parsing.h"
#include "stunt/core/strings.h"

namespace stunt::recipe {
namespace {

std::string shown(const Value& value) {
  std::string text = detail::dump_text(value);
  return text.size() > 60 ? text.substr(0, 57) + "..." : text;
}

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      const bool same = std::tolower(a[i - 1]) == std::tolower(b[j - 1]);
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (same ? 0 : 1)});
      diagonal = up;
    }
  }
  return row[b.size()];
}

std::string format_number(double x) {
  if (std::isinf(x)) return x > 0 ? "inf" : "-inf";
  if (x == std::floor(x) && std::abs(x) < 1e15) return std::to_string(static_cast<long long>(x));
  return str(x);
}

}  // namespace

std::string closest_match(const std::string& word, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_distance = std::max<size_t>(2, word.size() / 3) + 1;
  for (const auto& c : candidates) {
    const size_t d = edit_distance(word, c);
    if (d < best_distance) {
      best_distance = d;
      best = c;
    }
  }
  return best;
}

Field field(std::string name, ArgSchema schema, std::string help) {
  Field f;
  f.name = std::move(name);
  f.schema = std::make_shared<const ArgSchema>(std::move(schema));
  f.help = std::move(help);
  return f;
}

const char* to_string(FieldUse use) {
  switch (use) {
    case FieldUse::Acts:
      return "acts";
    case FieldUse::Renamed:
      return "renamed";
    case FieldUse::Inert:
      return "inert";
  }
  return "?";
}

Field renamed_field(std::string name, std::string current, ArgSchema schema) {
  Field f = field(std::move(name), std::move(schema));
  f.use = FieldUse::Renamed;
  f.note = std::move(current);
  return f;
}

Field inert_field(std::string name, ArgSchema schema, std::string why) {
  Field f = field(std::move(name), std::move(schema));
  f.use = FieldUse::Inert;
  f.note = std::move(why);
  return f;
}

Field required_field(std::string name, ArgSchema schema, std::string help) {
  Field f = field(std::move(name), std::move(schema), std::move(help));
  f.required = true;
  return f;
}

ArgSchema ArgSchema::of_kind(Kind kind) {
  ArgSchema s;
  s.kind_ = kind;
  return s;
}

ArgSchema ArgSchema::any() { return ArgSchema(); }

ArgSchema ArgSchema::boolean() { return of_kind(Kind::Bool); }

ArgSchema ArgSchema::integer() { return of_kind(Kind::Int); }

ArgSchema ArgSchema::number() { return of_kind(Kind::Number); }

ArgSchema ArgSchema::string() { return of_kind(Kind::String); }

ArgSchema ArgSchema::enumeration(std::vector<std::string> choices, bool ignore_case) {
  ArgSchema s;
  s.kind_ = Kind::Enum;
  s.choices_ = std::move(choices);
  s.ignore_case_ = ignore_case;
  return s;
}

ArgSchema ArgSchema::list_of(ArgSchema item) {
  ArgSchema s;
  s.kind_ = Kind::List;
  s.item_ = std::make_shared<const ArgSchema>(std::move(item));
  return s;
}

ArgSchema ArgSchema::object(std::vector<Field> fields) {
  ArgSchema s;
  s.kind_ = Kind::Object;
  s.fields_ = std::move(fields);
  return s;
}

ArgSchema ArgSchema::map_of(ArgSchema value) {
  ArgSchema s;
  s.kind_ = Kind::Map;
  s.item_ = std::make_shared<const ArgSchema>(std::move(value));
  return s;
}

ArgSchema ArgSchema::one_of(std::vector<ArgSchema> alternatives) {
  ArgSchema s;
  s.kind_ = Kind::OneOf;
  s.alternatives_ = std::move(alternatives);
  return s;
}

ArgSchema ArgSchema::string_or_list() { return one_of({string(), list_of(string())}); }

ArgSchema& ArgSchema::nullable() {
  nullable_ = true;
  return *this;
}

ArgSchema& ArgSchema::range(double min, double max, bool min_exclusive, bool max_exclusive) {
  min_ = min;
  max_ = max;
  min_exclusive_ = min_exclusive;
  max_exclusive_ = max_exclusive;
  return *this;
}

ArgSchema& ArgSchema::check(std::function<std::string(const Value&)> validator) {
  checks_.push_back(std::move(validator));
  return *this;
}

std::string ArgSchema::describe() const {
  std::string text;
  switch (kind_) {
    case Kind::Any:
      text = "any value";
      break;
    case Kind::Bool:
      text = "true or false";
      break;
    case Kind::Int:
      text = "an integer";
      break;
    case Kind::Number:
      text = "a number";
      break;
    case Kind::String:
      text = "a string";
      break;
    case Kind::Enum:
      text = "one of " + join(choices_, ", ");
      break;
    case Kind::List:
      text = "a list of " + item_->describe();
      break;
    case Kind::Object: {
      std::vector<std::string> names;
      for (const auto& f : fields_) names.push_back(f.name);
      text = "a mapping with keys " + join(names, ", ");
      break;
    }
    case Kind::Map:
      text = "a mapping of names to " + item_->describe();
      break;
    case Kind::OneOf: {
      for (const auto& a : alternatives_) text += (text.empty() ? "" : ", or ") + a.describe();
      break;
    }
  }
  if (min_ && max_) {
    text += str(" in ", min_exclusive_ ? "(" : "[", format_number(*min_), ", ",
                format_number(*max_), max_exclusive_ ? ")" : "]");
  }
  if (nullable_) text += " (or null)";
  return text;
}

bool ArgSchema::matches_shape(const Value& value) const {
  if (value.is_null()) return nullable_ || kind_ == Kind::Any;
  switch (kind_) {
    case Kind::Any:
      return true;
    case Kind::Bool:
      return value.is_boolean();
    case Kind::Int:
      return value.is_number_integer();
    case Kind::Number:
      return value.is_number();
    case Kind::String:
    case Kind::Enum:
      return value.is_string();
    case Kind::List:
      return value.is_array();
    case Kind::Object:
    case Kind::Map:
      return value.is_object();
    case Kind::OneOf:
      return std::any_of(alternatives_.begin(), alternatives_.end(),
                         [&](const ArgSchema& a) { return a.matches_shape(value); });
  }
  return false;
}

void ArgSchema::validate(const Value& value, const std::string& path,
                         const std::string& source) const {
  using detail::fail;
  if (value.is_null()) {
    if (nullable_ || kind_ == Kind::Any) return;
    fail(source, path, "expected ", describe(), ", found null; give a value or remove the key");
  }
  if (!matches_shape(value)) {
    fail(source, path, "expected ", describe(), ", found ", shown(value));
  }
  switch (kind_) {
    case Kind::Int:
    case Kind::Number: {
      const double x = value.get<double>();
      const bool below = min_ && (min_exclusive_ ? x <= *min_ : x < *min_);
      const bool above = max_ && (max_exclusive_ ? x >= *max_ : x > *max_);
      if (below || above) {
        fail(source, path, shown(value), " is out of range; expected ", describe());
      }
      break;
    }
    case Kind::Enum: {
      const std::string text = value.get<std::string>();
      const bool found = std::any_of(choices_.begin(), choices_.end(), [&](const std::string& c) {
        return ignore_case_ ? to_lower(c) == to_lower(text) : c == text;
      });
      if (!found) {
        const std::string hint = closest_match(text, choices_);
        fail(source, path, "'", text, "' is not allowed; expected one of ", join(choices_, ", "),
             hint.empty() ? "" : str(" (did you mean '", hint, "'?)"));
      }
      break;
    }
    case Kind::List:
      for (size_t i = 0; i < value.size(); ++i) {
        item_->validate(value[i], str(path, "[", i, "]"), source);
      }
      break;
    case Kind::Map:
      for (auto it = value.begin(); it != value.end(); ++it) {
        item_->validate(it.value(), detail::join_path(path, it.key()), source);
      }
      break;
    case Kind::Object: {
      std::vector<std::string> names;
      for (const auto& f : fields_) names.push_back(f.name);
      for (auto it = value.begin(); it != value.end(); ++it) {
        const auto f = std::find_if(fields_.begin(), fields_.end(),
                                    [&](const Field& x) { return x.name == it.key(); });
        if (f == fields_.end()) {
          const std::string hint = closest_match(it.key(), names);
          fail(source, detail::join_path(path, it.key()), "unknown key",
               hint.empty() ? "" : str("; did you mean '", hint, "'?"),
               " (known keys: ", join(names, ", "), ")");
        }
        f->schema->validate(it.value(), detail::join_path(path, it.key()), source);
      }
      for (const auto& f : fields_) {
        if (f.required && !value.contains(f.name)) {
          fail(source, detail::join_path(path, f.name), "missing; expected ", f.schema->describe(),
               f.help.empty() ? "" : " (" + f.help + ")");
        }
      }
      break;
    }
    case Kind::OneOf: {
      // Validate against the first alternative of the right shape, so the error is specific.
      for (const auto& a : alternatives_) {
        if (a.matches_shape(value)) {
          a.validate(value, path, source);
          break;
        }
      }
      break;
    }
    default:
      break;
  }
  for (const auto& check : checks_) {
    const std::string problem = check(value);
    if (!problem.empty()) fail(source, path, problem);
  }
}

}  // namespace stunt::recipe
