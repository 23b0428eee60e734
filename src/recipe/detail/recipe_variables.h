#pragma once
// Recipe variables and eval(), shared by both syntaxes: SparseML's top-level and stage
// variables, and llm-compressor's recipe args (top-level keys that are not stages, and a
// stage's `args` mapping). --recipe-args values replace top-level ones before anything is
// evaluated.

#include <functional>
#include <map>
#include <string>

#include "stunt/recipe/recipe.h"

namespace stunt::recipe::detail {

using Scope = std::map<std::string, Value>;

/// Resolves the variables of one level: every key of `container` for which `is_variable` says
/// so. They may refer to each other in any order, and to `parent`'s (already resolved) ones.
/// `overrides`, when given, replaces values first; each must name a variable of this level.
Scope resolve_variables(const Value& container, const Scope* parent, const std::string& source,
                        const std::string& prefix,
                        const std::function<bool(const std::string&, const Value&)>& is_variable,
                        const RecipeArgs* overrides = nullptr);

/// Evaluates "eval(...)" strings inside `value` (recursively) against `scope`, then `parent`;
/// other values pass through; tag keys are dropped.
Value evaluate(const Value& value, const Scope& scope, const Scope* parent,
               const std::string& source, const std::string& path);

}  // namespace stunt::recipe::detail
