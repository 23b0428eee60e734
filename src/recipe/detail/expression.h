#pragma once
// SparseML's eval(...) arithmetic over recipe variables.

#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "stunt/recipe/recipe.h"

namespace stunt::recipe::detail {

/// Looks a variable up; nullopt when it is unknown (or not resolved yet).
using VariableLookup = std::function<std::optional<Value>(const std::string& name)>;

/// Thrown when an expression names a variable that is not (yet) defined.
struct UnknownVariable {
  std::string name;
};

/// Evaluates an arithmetic expression: numbers, variables, + - * / // % **, unary minus,
/// parentheses, and abs, float, int, min, max, round. The result is an integer Value when
/// Python would give an int. Throws RecipeError (message without location) on bad syntax,
/// UnknownVariable for an unknown name.
Value evaluate_expression(std::string_view expression, const VariableLookup& lookup);

/// "eval(x * 2)" -> "x * 2"; nullopt for any other string.
std::optional<std::string> eval_body(const std::string& text);

}  // namespace stunt::recipe::detail
