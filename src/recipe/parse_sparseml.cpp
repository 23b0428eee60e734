// SparseML's older syntax: top-level variables, `*modifiers` lists of `!ModifierName` tagged
// mappings, eval(...) arithmetic over the variables, and optional stages that hold their own
// variables and modifier lists.
#include <map>

#include "detail/expression.h"
#include "detail/recipe_parsing.h"

namespace stunt::recipe::detail {
namespace {

using Scope = std::map<std::string, Value>;

bool is_modifier_list(const std::string& key, const Value& value) {
  return contains(key, "modifiers") && value.is_array();
}

bool is_stage(const Value& value) {
  if (!value.is_object() || value.contains(kTagKey)) return false;
  for (auto it = value.begin(); it != value.end(); ++it) {
    if (is_modifier_list(it.key(), it.value())) return true;
  }
  return false;
}

std::optional<Value> lookup(const Scope& scope, const Scope* parent, const std::string& name) {
  if (auto it = scope.find(name); it != scope.end()) return it->second;
  if (parent != nullptr) {
    if (auto it = parent->find(name); it != parent->end()) return it->second;
  }
  return std::nullopt;
}

/// Evaluates "eval(...)" strings; other values pass through.
Value evaluate(const Value& value, const Scope& scope, const Scope* parent,
               const std::string& source, const std::string& path) {
  if (value.is_string()) {
    const auto body = eval_body(value.get<std::string>());
    if (!body) return value;
    // eval(name) of a non-numeric variable returns that value as it is (SparseML does too).
    if (auto direct = lookup(scope, parent, *body); direct && !direct->is_number()) return *direct;
    try {
      return evaluate_expression(*body,
                                 [&](const std::string& n) { return lookup(scope, parent, n); });
    } catch (const UnknownVariable& u) {
      fail(source, path, "eval() uses '", u.name,
           "', which is not a variable of this recipe; "
           "define it at the top level",
           parent ? " or in the stage" : "");
    } catch (const RecipeError& e) {
      fail(source, path, e.what());
    }
  }
  if (value.is_array()) {
    Value out = Value::array();
    for (size_t i = 0; i < value.size(); ++i) {
      out.push_back(evaluate(value[i], scope, parent, source, str(path, "[", i, "]")));
    }
    return out;
  }
  if (value.is_object()) {
    Value out = Value::object();
    for (auto it = value.begin(); it != value.end(); ++it) {
      if (it.key() == kTagKey) continue;
      out[it.key()] = evaluate(it.value(), scope, parent, source, join_path(path, it.key()));
    }
    return out;
  }
  return value;
}

/// Resolves the variables of one level; they may refer to each other in any order, and to
/// the parent level's (already resolved) variables.
Scope resolve_variables(const Value& container, const Scope* parent, const std::string& source,
                        const std::string& prefix) {
  Scope resolved;
  std::map<std::string, std::string> pending;  // name -> expression body
  for (auto it = container.begin(); it != container.end(); ++it) {
    const std::string& key = it.key();
    const Value& value = it.value();
    if (key == "version" || key == "__metadata__" || is_modifier_list(key, value) ||
        is_stage(value)) {
      continue;
    }
    if (value.is_string()) {
      if (auto body = eval_body(value.get<std::string>())) {
        pending[key] = *body;
        continue;
      }
    }
    resolved[key] = value;
  }
  while (!pending.empty()) {
    bool progress = false;
    for (auto it = pending.begin(); it != pending.end();) {
      try {
        if (auto direct = lookup(resolved, parent, it->second); direct && !direct->is_number()) {
          resolved[it->first] = *direct;
        } else {
          resolved[it->first] = evaluate_expression(
              it->second, [&](const std::string& n) { return lookup(resolved, parent, n); });
        }
        it = pending.erase(it);
        progress = true;
      } catch (const UnknownVariable&) {
        ++it;
      } catch (const RecipeError& e) {
        fail(source, join_path(prefix, it->first), e.what());
      }
    }
    if (!progress) {
      const auto& [name, body] = *pending.begin();
      fail(source, join_path(prefix, name), "cannot evaluate eval(", body,
           "): it refers to a "
           "variable that is undefined or part of a cycle");
    }
  }
  return resolved;
}

void read_modifier_lists(const Value& container, const Scope& scope, const Scope* parent,
                         const std::string& source, const std::string& prefix, Stage& stage) {
  for (auto it = container.begin(); it != container.end(); ++it) {
    if (!is_modifier_list(it.key(), it.value())) continue;
    const std::string list_path = join_path(prefix, it.key());
    std::string group = it.key();
    if (ends_with(group, "_modifiers")) group = group.substr(0, group.size() - 10);
    if (group == "modifiers") group.clear();
    for (size_t i = 0; i < it.value().size(); ++i) {
      const Value& item = it.value()[i];
      const std::string path = str(list_path, "[", i, "]");
      if (!item.is_object() || !item.contains(kTagKey)) {
        fail(source, path,
             "expected a modifier written as a tagged mapping, e.g. "
             "'- !GMPruningModifier' followed by its arguments");
      }
      const std::string type = item[kTagKey].get<std::string>();
      stage.modifiers.push_back(
          ModifierSpec{type, group, path, evaluate(item, scope, parent, source, path)});
    }
  }
}

}  // namespace

bool is_sparseml_syntax(const Value& root) {
  for (auto it = root.begin(); it != root.end(); ++it) {
    if (is_modifier_list(it.key(), it.value()) || is_stage(it.value())) return true;
  }
  return false;
}

Recipe parse_sparseml(const Value& root, const std::string& source) {
  Recipe recipe;
  recipe.source = source;
  recipe.syntax = RecipeSyntax::SparseML;
  if (root.contains("version")) {
    recipe.version = version_text(root["version"], source);
  }
  bool top_level_lists = false, stages = false;
  for (auto it = root.begin(); it != root.end(); ++it) {
    top_level_lists |= is_modifier_list(it.key(), it.value());
    stages |= is_stage(it.value());
  }
  if (top_level_lists && stages) {
    fail(source, "",
         "the recipe has both top-level modifier lists and stages; SparseML would "
         "ignore the stages. Move the top-level lists into a stage");
  }
  const Scope globals = resolve_variables(root, nullptr, source, "");
  if (!stages) {
    Stage stage;
    stage.name = "default";
    read_modifier_lists(root, globals, nullptr, source, "", stage);
    recipe.stages.push_back(std::move(stage));
  } else {
    for (auto it = root.begin(); it != root.end(); ++it) {
      if (!is_stage(it.value())) continue;
      Stage stage;
      stage.name = it.key();
      const Scope local = resolve_variables(it.value(), &globals, source, it.key());
      read_modifier_lists(it.value(), local, &globals, source, it.key(), stage);
      recipe.stages.push_back(std::move(stage));
    }
  }
  for (const auto& stage : recipe.stages) {
    if (stage.modifiers.empty()) fail(source, stage.name, "no modifiers in this stage");
  }
  return recipe;
}

}  // namespace stunt::recipe::detail
