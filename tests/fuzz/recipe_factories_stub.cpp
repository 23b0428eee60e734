// The recipe fuzzer parses and validates recipes only; it never creates a modifier. These stand
// in for the one-shot modifiers' factories, whose code needs LibTorch, which the sanitizer build
// does not link.
#include "detail/pruning_modifiers.h"
#include "detail/quantization_modifiers.h"

namespace stunt::recipe::detail {

std::unique_ptr<Modifier> make_quantization_modifier(const ModifierSpec&) { return nullptr; }
std::unique_ptr<Modifier> make_gptq_modifier(const ModifierSpec&) { return nullptr; }
std::unique_ptr<Modifier> make_smoothquant_modifier(const ModifierSpec&) { return nullptr; }
std::unique_ptr<Modifier> make_awq_modifier(const ModifierSpec&) { return nullptr; }
std::unique_ptr<Modifier> make_sparsegpt_modifier(const ModifierSpec&) { return nullptr; }
std::unique_ptr<Modifier> make_wanda_modifier(const ModifierSpec&) { return nullptr; }
std::unique_ptr<Modifier> make_magnitude_pruning_modifier(const ModifierSpec&) { return nullptr; }
std::unique_ptr<Modifier> make_constant_pruning_modifier(const ModifierSpec&) { return nullptr; }
std::unique_ptr<Modifier> make_layer_pruning_modifier(const ModifierSpec&) { return nullptr; }
std::unique_ptr<Modifier> make_head_pruning_modifier(const ModifierSpec&) { return nullptr; }
std::unique_ptr<Modifier> make_channel_pruning_modifier(const ModifierSpec&) { return nullptr; }

}  // namespace stunt::recipe::detail
