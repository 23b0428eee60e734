#include <iostream>

#include "commands.h"
#include "stunt/core/error.h"
#include "stunt/core/strings.h"
#include "stunt/recipe/oneshot.h"
#include "stunt/recipe/recipe.h"
#include "stunt/recipe/registry.h"

namespace compress {

Runner add_recipe(CLI::App& app) {
  auto* cmd = app.add_subcommand("recipe", "Work with recipes");
  cmd->require_subcommand(1);
  auto* check = cmd->add_subcommand(
      "check",
      "Run every check `compress --recipe` makes before it loads a model: print what will run, "
      "what would be refused and why, and the normalized recipe; exit 1 if anything would be "
      "refused");
  struct Options {
    std::string path;
    std::string recipe_args;
    bool json = false;
  };
  auto options = std::make_shared<Options>();
  check->add_option("RECIPE", options->path, "Recipe file (.yaml, .yml, .json, .md)")->required();
  check->add_option("--recipe-args", options->recipe_args,
                    "Recipe variables to set, as name=value,name=value");
  check->add_flag("--json", options->json, "Print the result as JSON");
  return [options] {
    using stunt::recipe::Value;
    const auto recipe = stunt::recipe::load_recipe(
        options->path, options->recipe_args.empty()
                           ? stunt::recipe::RecipeArgs{}
                           : stunt::recipe::parse_recipe_args(options->recipe_args));
    const auto checks = stunt::recipe::check_oneshot(recipe);
    size_t refused = 0;
    for (const auto& c : checks) refused += c.refusal.empty() ? 0 : 1;
    if (options->json) {
      Value out;
      out["source"] = recipe.source;
      out["syntax"] = stunt::recipe::syntax_name(recipe.syntax);
      out["valid"] = refused == 0;
      out["variables"] = Value::object();
      for (const auto& [name, value] : recipe.variables) out["variables"][name] = value;
      out["notes"] = recipe.notes;
      out["recipe"] = recipe.to_value();
      out["modifiers"] = Value::array();
      for (const auto& c : checks) {
        Value m = {{"path", c.spec->path},
                   {"type", c.spec->type},
                   {"runs", c.refusal.empty()},
                   {"calibrates", c.calibrates},
                   {"trains", c.trains}};
        if (!c.refusal.empty()) m["refusal"] = c.refusal;
        out["modifiers"].push_back(std::move(m));
      }
      std::cout << out.dump(2) << "\n";
    } else {
      std::cout << "# " << recipe.source << " (" << stunt::recipe::syntax_name(recipe.syntax)
                << " syntax)\n";
      for (const auto& c : checks) {
        std::cout << "#   " << c.spec->path << ": " << c.spec->type;
        if (!c.refusal.empty()) {
          std::cout << ": refused: " << c.refusal << "\n";
        } else {
          std::cout << ": runs" << (c.trains ? " while training (give --dataset)" : "")
                    << (c.calibrates ? " (calibrates: give --dataset)" : "")
                    << (c.changes_structure ? " (cuts the model's structure)" : "") << "\n";
        }
      }
      for (const auto& note : recipe.notes) std::cout << "# " << note << "\n";
      std::cout << recipe.to_yaml();
    }
    if (refused > 0) {
      throw stunt::RecipeError(stunt::str(recipe.source, ": ", refused, " of ", checks.size(),
                                          " modifiers would be refused by `compress --recipe` "
                                          "(see above)"));
    }
    std::cout << (options->json ? "" : "# valid: `compress --recipe` will run every modifier\n");
    return 0;
  };
}

}  // namespace compress
