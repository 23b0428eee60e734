// llm-compressor's stage syntax:
//   <name>_stage: {run_type?: oneshot|train, args?: {...}, <group>_modifiers: {Name: {args}}}
// Top-level keys that are not stages (numbers, strings, lists) and the keys of a top-level
// `args` mapping are recipe variables, which eval(...) in modifier arguments reads, as
// llm-compressor's RecipeArgs did; a stage's `args` are variables of that stage.
#include "detail/recipe_parsing.h"
#include "detail/recipe_variables.h"

namespace stunt::recipe::detail {
namespace {

bool is_top_level_variable(const std::string& key, const Value& value) {
  return key != "version" && key != "args" && !ends_with(key, "_stage") && !value.is_object();
}

}  // namespace

Recipe parse_llmcompressor(const Value& root, const std::string& source,
                           const RecipeArgs& recipe_args) {
  Recipe recipe;
  recipe.source = source;
  recipe.syntax = RecipeSyntax::LlmCompressor;
  Value variables = Value::object();
  for (auto it = root.begin(); it != root.end(); ++it) {
    if (is_top_level_variable(it.key(), it.value()) && !ends_with(it.key(), "modifiers")) {
      variables[it.key()] = it.value();
    }
  }
  if (root.contains("args")) {
    if (!root["args"].is_object()) {
      fail(source, "args", "expected a mapping of recipe variables, found ",
           root["args"].type_name());
    }
    for (auto it = root["args"].begin(); it != root["args"].end(); ++it) {
      if (variables.contains(it.key())) {
        fail(source, join_path("args", it.key()), "the variable is defined at the top level too");
      }
      variables[it.key()] = it.value();
    }
  }
  const auto any_key = [](const std::string&, const Value&) { return true; };
  const Scope globals = resolve_variables(variables, nullptr, source, "", any_key, &recipe_args);
  recipe.variables = globals;
  for (auto it = root.begin(); it != root.end(); ++it) {
    const std::string& key = it.key();
    const Value& value = it.value();
    if (key == "version") {
      recipe.version = version_text(value, source);
      continue;
    }
    if (key == "args" || variables.contains(key)) continue;
    if (!ends_with(key, "_stage")) {
      fail(source, key,
           "unknown top-level key; stages are named '<name>_stage' (e.g. "
           "quant_stage: {quant_modifiers: {GPTQModifier: {...}}}), and recipe variables are "
           "numbers, strings or lists (or go under args:)",
           ends_with(key, "modifiers") ? "; wrap the modifiers in a stage" : "");
    }
    if (!value.is_object())
      fail(source, key, "a stage must be a mapping, found ", value.type_name());
    Stage stage;
    stage.name = key.substr(0, key.size() - 6);
    Scope local;
    if (value.contains("args")) {
      if (!value["args"].is_object()) {
        fail(source, join_path(key, "args"), "expected a mapping of stage variables, found ",
             value["args"].type_name());
      }
      local = resolve_variables(value["args"], &globals, source, join_path(key, "args"), any_key);
    }
    for (auto g = value.begin(); g != value.end(); ++g) {
      const std::string path = join_path(key, g.key());
      if (g.key() == "args") continue;
      if (g.key() == "run_type") {
        if (!g.value().is_string() || (g.value() != "oneshot" && g.value() != "train")) {
          fail(source, path, "expected oneshot or train, found ", dump_text(g.value()));
        }
        stage.run_type = g.value().get<std::string>();
        continue;
      }
      if (!ends_with(g.key(), "_modifiers")) {
        fail(source, path,
             "unknown key in a stage; expected run_type or '<group>_modifiers' "
             "(e.g. quant_modifiers)");
      }
      if (!g.value().is_object()) {
        fail(source, path, "expected a mapping of ModifierName: {arguments}, found ",
             g.value().type_name());
      }
      const std::string group = g.key().substr(0, g.key().size() - 10);
      for (auto m = g.value().begin(); m != g.value().end(); ++m) {
        const std::string mpath = join_path(path, m.key());
        if (m.value().is_null()) {
          fail(source, mpath, "give the modifier's arguments as a mapping ({} for none)");
        }
        if (!m.value().is_object()) {
          fail(source, mpath, "expected a mapping of arguments, found ", m.value().type_name());
        }
        if (m.value().contains("group")) {
          fail(source, join_path(mpath, "group"), "the group comes from '", g.key(),
               "'; remove this key");
        }
        const Value args = value.contains("args")
                               ? evaluate(m.value(), local, &globals, source, mpath)
                               : evaluate(m.value(), globals, nullptr, source, mpath);
        stage.modifiers.push_back(ModifierSpec{m.key(), group, mpath, args});
      }
    }
    if (stage.modifiers.empty()) fail(source, key, "the stage has no modifiers");
    recipe.stages.push_back(std::move(stage));
  }
  if (recipe.stages.empty()) {
    fail(source, "",
         "the recipe has no stages; write e.g. quant_stage: {quant_modifiers: "
         "{QuantizationModifier: {scheme: W4A16, targets: [Linear]}}}");
  }
  return recipe;
}

}  // namespace stunt::recipe::detail
