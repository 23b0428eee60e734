#include <iostream>

#include "commands.h"
#include "stunt/recipe/recipe.h"
#include "stunt/recipe/registry.h"

namespace compress {

Runner add_recipe(CLI::App& app) {
  auto* cmd = app.add_subcommand("recipe", "Work with recipes");
  cmd->require_subcommand(1);
  auto* check = cmd->add_subcommand(
      "check",
      "Parse and validate a recipe (llm-compressor or SparseML syntax, JSON or YAML) and "
      "print its normalized form");
  struct Options {
    std::string path;
    bool json = false;
  };
  auto options = std::make_shared<Options>();
  check->add_option("RECIPE", options->path, "Recipe file (.yaml, .yml, .json, .md)")->required();
  check->add_flag("--json", options->json, "Print the normalized recipe as JSON");
  return [options] {
    const auto recipe = stunt::recipe::load_recipe(options->path);
    const auto& registry = stunt::recipe::ModifierRegistry::builtin();
    if (options->json) {
      stunt::recipe::Value out;
      out["source"] = recipe.source;
      out["syntax"] = stunt::recipe::syntax_name(recipe.syntax);
      out["recipe"] = recipe.to_value();
      out["modifiers"] = stunt::recipe::Value::array();
      for (const auto& stage : recipe.stages) {
        for (const auto& m : stage.modifiers) {
          const auto* info = registry.find(m.type, recipe.syntax);
          out["modifiers"].push_back({{"path", m.path},
                                      {"type", m.type},
                                      {"stage", stage.name},
                                      {"implemented", static_cast<bool>(info->factory)}});
        }
      }
      std::cout << out.dump(2) << "\n";
      return 0;
    }
    std::cout << "# " << recipe.source << ": valid (" << stunt::recipe::syntax_name(recipe.syntax)
              << " syntax)\n";
    for (const auto& stage : recipe.stages) {
      for (const auto& m : stage.modifiers) {
        const auto* info = registry.find(m.type, recipe.syntax);
        std::cout << "#   " << m.path << ": " << m.type << " ("
                  << (info->factory ? "implemented" : "not implemented yet") << ")\n";
      }
    }
    std::cout << recipe.to_yaml();
    return 0;
  };
}

}  // namespace compress
