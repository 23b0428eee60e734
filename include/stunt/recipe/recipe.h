#pragma once
/// Recipes: Recipe -> Stage -> Modifier, parsed from JSON or YAML in either syntax users
/// already have (llm-compressor's stages, SparseML's `!Modifier` lists with variables).

#include <nlohmann/json.hpp>

#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace stunt::recipe {

/// Recipe values keep the order the user wrote them in.
using Value = nlohmann::ordered_json;

enum class RecipeSyntax { LlmCompressor, SparseML };
const char* syntax_name(RecipeSyntax syntax);

/// A modifier's arguments as its code reads them: every key looked at is recorded, so that
/// ModifierRegistry::create (and a test over every schema) can tell an argument that some code
/// acts on from one that was accepted and then ignored. Same calls as a const Value.
class ArgReader {
 public:
  ArgReader(const Value& args, std::set<std::string>& read) : args_(args), read_(read) {}
  bool contains(const std::string& key) const {
    read_.insert(key);
    return args_.contains(key);
  }
  /// The value of a key that contains() found.
  const Value& operator[](const std::string& key) const {
    read_.insert(key);
    return args_.at(key);
  }
  template <typename T>
  T value(const std::string& key, const T& fallback) const {
    read_.insert(key);
    return args_.value(key, fallback);
  }
  /// Whether the key is given with a value other than null.
  bool has(const std::string& key) const { return contains(key) && !args_.at(key).is_null(); }

 private:
  const Value& args_;
  std::set<std::string>& read_;
};

/// One modifier of a stage, with its arguments as written (eval() already applied, deprecated
/// keys renamed by validate_recipe).
struct ModifierSpec {
  /// Registered name, e.g. "GPTQModifier".
  std::string type;
  /// The group it was listed under ("quant" for quant_modifiers), "" when none.
  std::string group;
  /// Where it sits in the recipe file: "quant_stage.quant_modifiers.GPTQModifier".
  std::string path;
  Value args = Value::object();
  /// The recipe file it came from (set when the registry creates the modifier).
  std::string source{};

  /// The keys that code has read through reader() (see ArgReader).
  mutable std::set<std::string> read_keys{};

  /// "recipe.yaml: quant_stage.quant_modifiers.GPTQModifier", for error messages.
  std::string where() const { return source.empty() ? path : source + ": " + path; }
  /// The arguments, recording what is read.
  ArgReader reader() const { return ArgReader(args, read_keys); }
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
  /// The recipe's variables after eval() and --recipe-args, by name (both syntaxes).
  std::map<std::string, Value> variables;
  /// What validate_recipe changed or noticed, one line each ("warning: ..." for deprecated keys
  /// and keys that change nothing; plain for aliases and schemes one modifier takes from
  /// another). Each was also logged.
  std::vector<std::string> notes;

  /// The normalized form: llm-compressor stage syntax, as JSON.
  Value to_value() const;
  /// The normalized form as YAML text.
  std::string to_yaml() const;
};

/// Values for a recipe's variables given from outside (`--recipe-args name=value,...`), as
/// llm-compressor's recipe_args and SparseML's recipe variables: they replace the recipe's own
/// values before any eval() runs. Each must name a variable the recipe defines.
using RecipeArgs = std::map<std::string, Value>;

/// Parses "name=value,name=value" (values read as YAML scalars: 0.5, true, text). Throws
/// ValueError naming the bad item.
RecipeArgs parse_recipe_args(std::string_view text);

/// Parses recipe text (JSON or YAML, detected from the content) in either syntax, with its
/// variables and eval() expressions resolved. Does not validate modifier arguments: see
/// validate_recipe(). Throws RecipeError naming `source` and the path inside the recipe.
Recipe parse_recipe(std::string_view text, const std::string& source,
                    const RecipeArgs& recipe_args = {});
/// Reads and parses a recipe file.
Recipe parse_recipe_file(const std::filesystem::path& path, const RecipeArgs& recipe_args = {});

class ModifierRegistry;
/// Checks every modifier name and argument against the registry, and normalizes the recipe:
/// aliases become the modifier they name, deprecated keys their current names, and a bare
/// GPTQModifier takes the scheme of the QuantizationModifier before it (as llm-compressor
/// does); each change is recorded in recipe.warnings. Throws RecipeError naming the file, the
/// path inside it, what was expected and a fix.
void validate_recipe(Recipe& recipe, const ModifierRegistry& registry);
/// parse_recipe_file + validate_recipe against the built-in registry.
Recipe load_recipe(const std::filesystem::path& path, const RecipeArgs& recipe_args = {});

/// The first modifier of the recipe that quantizes weights (QuantizationModifier, GPTQModifier,
/// AWQModifier), or null: outputs that store unquantized values (the legacy sparse layouts)
/// refuse such recipes before any work.
const ModifierSpec* first_weight_quantizer(const Recipe& recipe);

}  // namespace stunt::recipe
