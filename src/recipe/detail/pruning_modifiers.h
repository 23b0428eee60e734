#pragma once
// Factories of the one-shot pruning modifiers (registered in modifiers_pruning.cpp).

#include <memory>

#include "stunt/recipe/modifier.h"

namespace stunt::recipe::detail {

std::unique_ptr<Modifier> make_sparsegpt_modifier(const ModifierSpec& spec);
std::unique_ptr<Modifier> make_wanda_modifier(const ModifierSpec& spec);
std::unique_ptr<Modifier> make_magnitude_pruning_modifier(const ModifierSpec& spec);
std::unique_ptr<Modifier> make_constant_pruning_modifier(const ModifierSpec& spec);
// Structured pruning (structured_pruning_modifiers.cpp).
std::unique_ptr<Modifier> make_layer_pruning_modifier(const ModifierSpec& spec);
std::unique_ptr<Modifier> make_head_pruning_modifier(const ModifierSpec& spec);
std::unique_ptr<Modifier> make_channel_pruning_modifier(const ModifierSpec& spec);

}  // namespace stunt::recipe::detail
