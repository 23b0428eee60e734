#include "stunt/recipe/registry.h"

#include <algorithm>
#include <set>

#include "detail/recipe_parsing.h"

namespace stunt::recipe {

void ModifierRegistry::add(ModifierInfo info) {
  for (const auto& e : entries_) {
    STUNT_ASSERT(!(e.name == info.name && e.syntax == info.syntax), "modifier '", info.name,
                 "' registered twice");
  }
  entries_.push_back(std::move(info));
}

const ModifierInfo* ModifierRegistry::find(const std::string& name, RecipeSyntax syntax) const {
  const ModifierInfo* general = nullptr;
  for (const auto& e : entries_) {
    if (e.name != name) continue;
    if (e.syntax == syntax) return &e;
    if (!e.syntax) general = &e;
  }
  return general;
}

std::string ModifierRegistry::known_names() const {
  std::set<std::string> names;
  for (const auto& e : entries_) names.insert(e.name);
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

void ModifierRegistry::validate(const ModifierSpec& spec, RecipeSyntax syntax,
                                const std::string& source) const {
  const ModifierInfo* info = find(spec.type, syntax);
  if (info == nullptr) {
    std::vector<std::string> names;
    for (const auto& e : entries_) names.push_back(e.name);
    const std::string hint = closest_match(spec.type, names);
    detail::fail(source, spec.path, "unknown modifier '", spec.type, "'",
                 hint.empty() ? "" : str("; did you mean '", hint, "'?"),
                 " (known: ", known_names(), ")");
  }
  info->schema.validate(spec.args, spec.path, source);
  for (const auto& check : info->cross_checks) {
    const std::string problem = check(spec.args);
    if (!problem.empty()) detail::fail(source, spec.path, problem);
  }
}

std::unique_ptr<Modifier> ModifierRegistry::create(const ModifierSpec& spec, RecipeSyntax syntax,
                                                   const std::string& source) const {
  validate(spec, syntax, source);
  const ModifierInfo* info = find(spec.type, syntax);
  if (!info->factory) {
    std::vector<std::string> implemented;
    for (const auto& e : entries_) {
      if (e.factory) implemented.push_back(e.name);
    }
    std::string list;
    for (const auto& n : implemented) list += (list.empty() ? "" : ", ") + n;
    throw NotImplementedError(str(source, ": ", spec.path, ": ", spec.type, " (", info->method,
                                  ") is not implemented yet in Stunt; the recipe is valid, but it "
                                  "cannot run until this modifier lands (implemented now: ",
                                  list.empty() ? "none" : list, ")"));
  }
  ModifierSpec located = spec;
  located.source = source;
  return info->factory(located);
}

const ModifierRegistry& ModifierRegistry::builtin() {
  static const ModifierRegistry registry = [] {
    ModifierRegistry r;
    register_quantization_modifiers(r);
    register_pruning_modifiers(r);
    register_distillation_modifiers(r);
    register_training_modifiers(r);
    return r;
  }();
  return registry;
}

}  // namespace stunt::recipe
