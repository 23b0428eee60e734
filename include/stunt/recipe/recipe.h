#pragma once
/// Recipes: Recipe -> Stage -> Modifier, parsed from JSON or YAML in either syntax users
/// already have (llm-compressor's stages, SparseML's `!Modifier` lists with variables).

#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace stunt::recipe {

/// Recipe values keep the order the user wrote them in.
using Value = nlohmann::ordered_json;

enum class RecipeSyntax { LlmCompressor, SparseML };
const char* syntax_name(RecipeSyntax syntax);

/// One modifier of a stage, with its arguments as written (SparseML eval() already applied).
struct ModifierSpec {
  /// Registered name, e.g. "GPTQModifier".
  std::string type;
  /// The group it was listed under ("quant" for quant_modifiers), "" when none.
  std::string group;
  /// Where it sits in the recipe file: "quant_stage.quant_modifiers.GPTQModifier".
  std::string path;
  Value args = Value::object();
  /// The recipe file it came from (set when the registry creates the modifier).
  std::string source;

  /// "recipe.yaml: quant_stage.quant_modifiers.GPTQModifier", for error messages.
  std::string where() const { return source.empty() ? path : source + ": " + path; }
};

struct Stage {
  std::string name;
  /// "oneshot", "train", or "" when the recipe does not say.
  std::string run_type;
  std::vector<ModifierSpec> modifiers;
};

struct Recipe {
  /// The file (or label) it came from; errors name it.
  std::string source;
  RecipeSyntax syntax = RecipeSyntax::LlmCompressor;
  std::string version;
  std::vector<Stage> stages;

  /// The normalized form: llm-compressor stage syntax, as JSON.
  Value to_value() const;
  /// The normalized form as YAML text.
  std::string to_yaml() const;
};

/// Parses recipe text (JSON or YAML, detected from the content) in either syntax. Does not
/// validate modifier arguments: see validate_recipe(). Throws RecipeError naming `source` and
/// the path inside the recipe.
Recipe parse_recipe(std::string_view text, const std::string& source);
/// Reads and parses a recipe file.
Recipe parse_recipe_file(const std::filesystem::path& path);

class ModifierRegistry;
/// Checks every modifier name and argument against the registry. Throws RecipeError naming the
/// file, the path inside it, what was expected and a fix.
void validate_recipe(const Recipe& recipe, const ModifierRegistry& registry);
/// parse_recipe_file + validate_recipe against the built-in registry.
Recipe load_recipe(const std::filesystem::path& path);

/// The first modifier of the recipe that quantizes weights (QuantizationModifier, GPTQModifier,
/// AWQModifier), or null: outputs that store unquantized values (the legacy sparse layouts)
/// refuse such recipes before any work.
const ModifierSpec* first_weight_quantizer(const Recipe& recipe);

}  // namespace stunt::recipe
