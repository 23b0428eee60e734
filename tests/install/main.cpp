// Links the installed libstunt the way a user's training code does.
#include <stunt/stunt.h>

#include <ATen/ATen.h>

#include <cstdio>
#include <filesystem>
#include <string>

int main(int argc, char** argv) {
  const std::filesystem::path file =
      std::filesystem::path(argc > 1 ? argv[1] : ".") / "w.safetensors";
  stunt::io::save_safetensors(file, {{"w", at::arange(6, at::kFloat).reshape({2, 3})}});
  const auto loaded = stunt::io::SafetensorsFile::open(file)->tensor("w");
  auto recipe = stunt::recipe::parse_recipe(
      "q_stage:\n  q_modifiers:\n    GPTQModifier: {scheme: W4A16}\n", "inline");
  stunt::recipe::validate_recipe(recipe, stunt::recipe::ModifierRegistry::builtin());
  try {
    STUNT_CHECK(loaded.sum().item<float>() == 15.0f, "round trip changed the data");
  } catch (const stunt::Error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  // The main form as a library call, and the one loader, reach the program too: a model that
  // is not there is one clear error, and nothing is written.
  const std::filesystem::path out = file.parent_path() / "compressed";
  try {
    stunt::recipe::compress_model(recipe, file.parent_path() / "no-model", out);
    std::fprintf(stderr, "compress_model accepted a missing model\n");
    return 1;
  } catch (const stunt::IoError& e) {
    if (std::string(e.what()).find("does not exist") == std::string::npos) return 1;
  }
  try {
    stunt::load_model(file.parent_path() / "no-model");
    return 1;
  } catch (const stunt::IoError&) {
  }
  if (std::filesystem::exists(out)) return 1;
  std::printf("stunt %s: %zu stage(s), sum %.0f\n", stunt::version(), recipe.stages.size(),
              loaded.sum().item<float>());
  return 0;
}
