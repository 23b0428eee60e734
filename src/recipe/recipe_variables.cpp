#include "detail/recipe_variables.h"

#include <algorithm>
#include <vector>

#include "detail/expression.h"
#include "detail/recipe_parsing.h"
#include "stunt/core/strings.h"

namespace stunt::recipe::detail {
namespace {

std::optional<Value> lookup(const Scope& scope, const Scope* parent, const std::string& name) {
  if (auto it = scope.find(name); it != scope.end()) return it->second;
  if (parent != nullptr) {
    if (auto it = parent->find(name); it != parent->end()) return it->second;
  }
  return std::nullopt;
}

}  // namespace

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

Scope resolve_variables(const Value& container, const Scope* parent, const std::string& source,
                        const std::string& prefix,
                        const std::function<bool(const std::string&, const Value&)>& is_variable,
                        const RecipeArgs* overrides) {
  Scope resolved;
  std::map<std::string, std::string> pending;  // name -> expression body
  std::vector<std::string> names;
  for (auto it = container.begin(); it != container.end(); ++it) {
    if (is_variable(it.key(), it.value())) names.push_back(it.key());
  }
  if (overrides != nullptr) {
    for (const auto& [name, value] : *overrides) {
      if (std::find(names.begin(), names.end(), name) == names.end()) {
        throw RecipeError(str("--recipe-args: '", name, "' is not a variable of ", source,
                              names.empty() ? std::string(" (it defines none)")
                                            : str(" (its variables: ", join(names, ", "), ")"),
                              "; a variable is a top-level key that is not a stage or a "
                              "modifier list"));
      }
    }
  }
  for (auto it = container.begin(); it != container.end(); ++it) {
    const std::string& key = it.key();
    if (!is_variable(key, it.value())) continue;
    const Value& value =
        overrides != nullptr && overrides->count(key) ? overrides->at(key) : it.value();
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

}  // namespace stunt::recipe::detail
