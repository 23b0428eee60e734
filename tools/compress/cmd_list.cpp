#include <iostream>

#include "commands.h"
#include "stunt/io/safetensors_format.h"
#include "stunt/quant/quant_args.h"
#include "stunt/recipe/registry.h"
#include "stunt/recipe/training.h"

namespace compress {
namespace {

void print_modifiers(bool json) {
  const auto& registry = stunt::recipe::ModifierRegistry::builtin();
  stunt::recipe::Value out = stunt::recipe::Value::array();
  for (const auto& m : registry.all()) {
    std::string syntax = m.syntax ? stunt::recipe::syntax_name(*m.syntax) : "any";
    std::string args;
    for (const auto& f : m.schema.fields()) args += (args.empty() ? "" : ", ") + f.name;
    // Modifiers with a training form run in train stages only (recipe/training.h).
    const bool trains = stunt::recipe::runs_in_training(
        m.name, m.syntax.value_or(stunt::recipe::RecipeSyntax::SparseML));
    const bool runs = m.factory || trains;
    if (json) {
      // Each field's status: acts (read and acted on, or its value refused with the recipe path),
      // renamed (a deprecated name, read as `current`), inert (changes nothing; `why`), or
      // refused (the whole modifier is not implemented yet). "implemented": one-shot; "trains":
      // in train stages.
      stunt::recipe::Value fields = stunt::recipe::Value::array();
      for (const auto& f : m.schema.fields()) {
        stunt::recipe::Value entry = {
            {"name", f.name},
            {"status", runs ? stunt::recipe::to_string(f.use) : "refused"},
            {"required", f.required},
            {"expects", f.schema->describe()}};
        if (f.use == stunt::recipe::FieldUse::Renamed) entry["current"] = f.note;
        if (f.use == stunt::recipe::FieldUse::Inert) entry["why"] = f.note;
        if (!f.help.empty()) entry["help"] = f.help;
        fields.push_back(std::move(entry));
      }
      out.push_back({{"name", m.name},
                     {"method", m.method},
                     {"syntax", syntax},
                     {"implemented", static_cast<bool>(m.factory)},
                     {"trains", trains},
                     {"summary", m.summary},
                     {"arguments", args},
                     {"fields", std::move(fields)}});
    } else {
      std::printf("%-32s %-13s %-15s %-20s %s\n", m.name.c_str(), m.method.c_str(), syntax.c_str(),
                  m.factory ? "implemented"
                  : trains  ? "in train stages"
                            : "not implemented yet",
                  m.summary.c_str());
    }
  }
  for (const auto& a : registry.aliases()) {
    std::string implied = a.implied_args.empty() ? "" : " with " + a.implied_args.dump();
    if (json) {
      out.push_back({{"name", a.name}, {"alias_of", a.target}, {"implied_args", a.implied_args}});
    } else {
      const std::string summary = "another name for " + a.target + implied;
      std::printf("%-32s %-13s %-15s %-20s %s\n", a.name.c_str(), "alias", "any", "",
                  summary.c_str());
    }
  }
  if (json) std::cout << out.dump(2) << "\n";
}

void print_schemes(bool json) {
  stunt::recipe::Value out = stunt::recipe::Value::array();
  for (const auto& p : stunt::quant::scheme_presets()) {
    if (json) {
      out.push_back({{"name", p.name}, {"summary", p.summary}, {"scheme", p.scheme.to_json()}});
    } else {
      std::printf("%-12s %s\n", p.name.c_str(), p.summary.c_str());
    }
  }
  if (json) std::cout << out.dump(2) << "\n";
}

void print_formats(bool json) {
  stunt::recipe::Value out;
  out["checkpoint_inputs"] = {"safetensors", "safetensors-sharded", "hf-folder", "torch-save",
                              "torchscript"};
  out["safetensors_dtypes"] = stunt::io::all_dtype_names();
  out["compressed_tensors_formats"] = stunt::quant::compression_formats();
  if (json) {
    std::cout << out.dump(2) << "\n";
    return;
  }
  std::cout << "checkpoint inputs:   safetensors file, sharded safetensors (index.json), Hugging "
               "Face folder, torch.save (zip), TorchScript archive\n"
            << "safetensors dtypes:  " << stunt::io::all_dtype_names() << "\n"
            << "compressed-tensors formats (recipes may name them; writers arrive with the "
               "methods):\n";
  for (const auto& f : stunt::quant::compression_formats()) std::cout << "  " << f << "\n";
}

}  // namespace

Runner add_list(CLI::App& app) {
  auto* cmd = app.add_subcommand("list", "List what Stunt knows: modifiers, schemes or formats");
  struct Options {
    std::string what;
    bool json = false;
  };
  auto options = std::make_shared<Options>();
  cmd->add_option("WHAT", options->what, "modifiers, schemes or formats")
      ->required()
      ->check(CLI::IsMember({"modifiers", "schemes", "formats"}));
  cmd->add_flag("--json", options->json, "Print JSON");
  return [options] {
    if (options->what == "modifiers") print_modifiers(options->json);
    if (options->what == "schemes") print_schemes(options->json);
    if (options->what == "formats") print_formats(options->json);
    return 0;
  };
}

}  // namespace compress
