#pragma once
// Argument fields shared by many modifiers.

#include <string>
#include <vector>

#include "stunt/recipe/schema.h"

namespace stunt::recipe::detail {

/// llm-compressor's Modifier base fields: index, start, end, update.
std::vector<Field> llmcompressor_base_fields();
/// SparseML's scheduling fields: start_epoch, end_epoch, update_frequency.
std::vector<Field> sparseml_epoch_fields();
/// Deprecated or placement-only keys that llm-compressor recipes still carry (inert here).
Field sequential_update_field();
Field offload_hessians_field();
/// `targets` / `ignore` as recipes write them (class names, exact names, re: patterns).
Field targets_field(bool required = false);
Field ignore_field();
/// A sparsity fraction in [0, 1).
ArgSchema sparsity_fraction();
/// "unstructured" or "N:M" with 0 < N < M (and llm-compressor's "0:0" for unstructured).
ArgSchema mask_structure();
/// A string or a list of strings (targets, ignore) as a list; null gives an empty one.
std::vector<std::string> string_list(const Value& v);
/// Concatenates field lists.
std::vector<Field> concat(std::vector<std::vector<Field>> parts);

}  // namespace stunt::recipe::detail
