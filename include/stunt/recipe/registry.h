#pragma once
/// The modifier registry: name -> argument schema (+ factory once implemented). Registration
/// is explicit (a function per method family); a miss lists the known names.

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "stunt/recipe/modifier.h"
#include "stunt/recipe/schema.h"

namespace stunt::recipe {

using ModifierFactory = std::function<std::unique_ptr<Modifier>(const ModifierSpec&)>;
/// Checks that involve several arguments; returns "" or the problem with its fix.
using CrossCheck = std::function<std::string(const Value& args)>;

struct ModifierInfo {
  std::string name;
  /// "quantization", "pruning", "distillation", "training".
  std::string method;
  std::string summary;
  ArgSchema schema;
  std::vector<CrossCheck> cross_checks{};
  /// Empty until the method is implemented: recipes naming it are refused.
  ModifierFactory factory{};
  /// When set, this entry serves only recipes of that syntax (SparseML's QAT
  /// QuantizationModifier has other arguments than llm-compressor's).
  std::optional<RecipeSyntax> syntax{};
};

/// Another name for a registered modifier, with the arguments that name implies (SparseML's
/// GlobalMagnitudePruningModifier is GMPruningModifier with global_sparsity: true).
struct ModifierAlias {
  std::string name;
  std::string target;
  Value implied_args = Value::object();
  std::optional<RecipeSyntax> syntax{};
};

class ModifierRegistry {
 public:
  void add(ModifierInfo info);
  void add_alias(ModifierAlias alias);
  /// The entry for `name` in a recipe of `syntax`, or nullptr.
  const ModifierInfo* find(const std::string& name, RecipeSyntax syntax) const;
  const std::vector<ModifierInfo>& all() const { return entries_; }
  const std::vector<ModifierAlias>& aliases() const { return aliases_; }
  /// Sorted, comma-separated distinct names.
  std::string known_names() const;

  /// Rewrites an alias to the modifier it names (adding the arguments it implies) and
  /// deprecated keys to their current names, and notes keys that change nothing here. Appends
  /// one line per change to `notes` (and logs it). Throws RecipeError for an unknown modifier,
  /// or a key given under both its old and its new name.
  void normalize(ModifierSpec& spec, RecipeSyntax syntax, const std::string& source,
                 std::vector<std::string>& notes) const;
  /// Validates one modifier's arguments; throws RecipeError.
  void validate(const ModifierSpec& spec, RecipeSyntax syntax, const std::string& source) const;
  /// Builds the modifier, which reads and checks its arguments (what it cannot do is refused
  /// here, before any model is loaded), and checks the one-shot schedule fields. Throws
  /// NotImplementedError naming it and its recipe path when Stunt does not implement it yet,
  /// and InternalError when an argument the schema marks as acting was never read.
  std::unique_ptr<Modifier> create(const ModifierSpec& spec, RecipeSyntax syntax,
                                   const std::string& source) const;

  /// Every modifier Stunt knows.
  static const ModifierRegistry& builtin();

 private:
  std::string unknown_modifier_message(const std::string& name) const;

  std::vector<ModifierInfo> entries_;
  std::vector<ModifierAlias> aliases_;
};

void register_quantization_modifiers(ModifierRegistry& registry);
void register_pruning_modifiers(ModifierRegistry& registry);
void register_distillation_modifiers(ModifierRegistry& registry);
void register_training_modifiers(ModifierRegistry& registry);

}  // namespace stunt::recipe
