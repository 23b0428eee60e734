// libFuzzer target: any text as a recipe (JSON or YAML, either syntax), parsed and validated.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "stunt/core/error.h"
#include "stunt/recipe/recipe.h"
#include "stunt/recipe/registry.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    auto recipe = stunt::recipe::parse_recipe(
        std::string_view(reinterpret_cast<const char*>(data), size), "fuzz");
    stunt::recipe::validate_recipe(recipe, stunt::recipe::ModifierRegistry::builtin());
    (void)recipe.to_yaml();
  } catch (const stunt::Error&) {
  }
  return 0;
}
