#pragma once
// Factories of the distillation modifiers' training forms (distillation_modifier.cpp).

#include <memory>
#include <string>

#include "stunt/recipe/training.h"

namespace stunt::recipe::detail {

/// SparseML's DistillationModifier: the student's logits learn the teacher's (State::teacher),
/// mixed with the task loss by hardness.
std::unique_ptr<TrainingModifier> make_logit_distillation(const ModifierSpec& spec);

/// Whether a modifier of `type` learns from a teacher.
bool is_distillation_modifier(const std::string& type);

/// RecipeError naming `where` when student and teacher are Hugging Face models with different
/// vocab_size; `why` says what needs one vocabulary.
void check_same_vocabulary(const model::Model& student, const model::Model& teacher,
                           const std::string& where, const char* why);

/// SparseML's PerLayerDistillationModifier (`sparseml`) or llm-compressor's
/// OutputDistillationModifier: the student's block outputs learn the teacher's
/// (hidden_distillation_modifier.cpp).
std::unique_ptr<TrainingModifier> make_hidden_state_distillation(const ModifierSpec& spec,
                                                                 bool sparseml);

/// Stunt's AttentionDistillationModifier: the student's self-attention learns the teacher's
/// (TinyBERT's map MSE or MiniLM's attention and value-relation KL;
/// attention_distillation_modifier.cpp).
std::unique_ptr<TrainingModifier> make_attention_distillation(const ModifierSpec& spec);

}  // namespace stunt::recipe::detail
