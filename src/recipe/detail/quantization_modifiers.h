#pragma once
// Factories of the one-shot quantization modifiers (registered in modifiers_quantization.cpp).

#include <memory>

#include "stunt/recipe/modifier.h"

namespace stunt::recipe::detail {

std::unique_ptr<Modifier> make_quantization_modifier(const ModifierSpec& spec);
std::unique_ptr<Modifier> make_gptq_modifier(const ModifierSpec& spec);
std::unique_ptr<Modifier> make_smoothquant_modifier(const ModifierSpec& spec);
std::unique_ptr<Modifier> make_awq_modifier(const ModifierSpec& spec);

}  // namespace stunt::recipe::detail
