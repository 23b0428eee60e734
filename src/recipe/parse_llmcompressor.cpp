// llm-compressor's stage syntax:
//   <name>_stage: {run_type?: oneshot|train, <group>_modifiers: {ModifierName: {args}}}
#include "detail/recipe_parsing.h"

namespace stunt::recipe::detail {

Recipe parse_llmcompressor(const Value& root, const std::string& source) {
  Recipe recipe;
  recipe.source = source;
  recipe.syntax = RecipeSyntax::LlmCompressor;
  for (auto it = root.begin(); it != root.end(); ++it) {
    const std::string& key = it.key();
    const Value& value = it.value();
    if (key == "version") {
      recipe.version = version_text(value, source);
      continue;
    }
    if (!ends_with(key, "_stage")) {
      fail(source, key,
           "unknown top-level key; stages are named '<name>_stage' (e.g. "
           "quant_stage: {quant_modifiers: {GPTQModifier: {...}}})",
           ends_with(key, "modifiers") ? "; wrap the modifiers in a stage" : "");
    }
    if (!value.is_object())
      fail(source, key, "a stage must be a mapping, found ", value.type_name());
    Stage stage;
    stage.name = key.substr(0, key.size() - 6);
    for (auto g = value.begin(); g != value.end(); ++g) {
      const std::string path = join_path(key, g.key());
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
        stage.modifiers.push_back(ModifierSpec{m.key(), group, mpath, m.value()});
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
