// SparseML's older syntax: top-level variables, `*modifiers` lists of `!ModifierName` tagged
// mappings, eval(...) arithmetic over the variables, and optional stages that hold their own
// variables and modifier lists.
#include <map>

#include "detail/recipe_parsing.h"
#include "detail/recipe_variables.h"

namespace stunt::recipe::detail {
namespace {

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

Recipe parse_sparseml(const Value& root, const std::string& source, const RecipeArgs& recipe_args) {
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
  const auto is_variable = [](const std::string& key, const Value& value) {
    return key != "version" && key != "__metadata__" && !is_modifier_list(key, value) &&
           !is_stage(value);
  };
  const Scope globals = resolve_variables(root, nullptr, source, "", is_variable, &recipe_args);
  recipe.variables = globals;
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
      const Scope local = resolve_variables(it.value(), &globals, source, it.key(), is_variable);
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
