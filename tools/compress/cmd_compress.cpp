// The main form: compress --recipe RECIPE MODEL -o OUT.
#include <iostream>

#include "commands.h"
#include "stunt/core/atomic_file.h"
#include "stunt/core/logging.h"
#include "stunt/io/checkpoint.h"
#include "stunt/recipe/recipe.h"
#include "stunt/recipe/registry.h"

namespace compress {

Runner add_compress(CLI::App& app) {
  struct Options {
    std::string recipe;
    std::string model;
    std::string output;
    bool overwrite = false;
  };
  auto options = std::make_shared<Options>();
  app.add_option("--recipe", options->recipe, "Recipe to apply (JSON or YAML)");
  app.add_option("MODEL", options->model,
                 "Model: Hugging Face folder, safetensors, torch.save or TorchScript file");
  app.add_option("-o,--output", options->output, "Output folder (written atomically)");
  app.add_flag("--overwrite", options->overwrite, "Replace an existing output folder");
  return [options, &app]() -> int {
    if (options->recipe.empty() || options->model.empty() || options->output.empty()) {
      std::cerr << app.help() << "\nerror: the main form needs --recipe RECIPE, MODEL and -o OUT\n";
      return 2;
    }
    const auto recipe = stunt::recipe::load_recipe(options->recipe);
    const auto model = stunt::io::Checkpoint::open(options->model);
    stunt::log::info("model ", options->model, ": ", stunt::io::format_name(model->format()), ", ",
                     model->entries().size(), " tensors");
    // Fail before any work when the output cannot be written or the recipe cannot run.
    stunt::AtomicDirectory output(options->output, {.overwrite = options->overwrite});
    const auto& registry = stunt::recipe::ModifierRegistry::builtin();
    std::vector<std::unique_ptr<stunt::recipe::Modifier>> modifiers;
    for (const auto& stage : recipe.stages) {
      for (const auto& spec : stage.modifiers) {
        modifiers.push_back(registry.create(spec, recipe.syntax, recipe.source));
      }
    }
    STUNT_ASSERT(false, "no modifier is implemented yet, so create() must have thrown");
    return 1;
  };
}

}  // namespace compress
