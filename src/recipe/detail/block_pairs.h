#pragma once
// Which student block learns which teacher block, for the distillation modifiers that compare
// blocks (hidden states, attention). Blocks are named as checkpoints name them
// ("model.layers.3", "bert.encoder.layer.2"); a student built from the teacher by the recipe's
// LayerPruningModifier pairs its block i with the teacher block it was copied from
// (State::kept_blocks), unless the recipe pairs names itself.

#include <string>
#include <vector>

#include "stunt/model/hf_model.h"
#include "stunt/recipe/modifier.h"

namespace stunt::recipe::detail {

/// A model's block by checkpoint name, with its num_blocks() index.
struct NamedBlock {
  std::string name;
  std::string stack_prefix;
  int64_t index_in_stack = 0;
  int block = 0;
};

/// Every block of `m`, stack by stack.
std::vector<NamedBlock> named_blocks(const model::HfModel& m);

/// A recipe's entry: one name or pattern for both models, or an explicit (student, teacher).
struct TargetEntry {
  std::string student, teacher;
  bool paired = false;
};

/// A recipe's `targets`: one name or pattern (a string), or a list of names, patterns and
/// [student, teacher] pairs of names. RecipeError naming `where`.targets for any other entry.
std::vector<TargetEntry> read_target_entries(const Value& targets, const std::string& where);

/// One student block learning one teacher block.
struct BlockPair {
  std::string student_name, teacher_name;
  int student = 0, teacher = 0;
};

/// The pairs `entries` name. An unpaired entry selects student blocks and maps each to the
/// teacher block it was built from (or the same index); a paired one, or one whose mapped names
/// the teacher lacks, pairs the i-th student match with the i-th teacher match. RecipeError
/// naming `where` and the known block names for a name that matches nothing or match counts that
/// differ.
std::vector<BlockPair> resolve_block_pairs(const std::vector<TargetEntry>& entries,
                                           const model::HfModel& student,
                                           const model::HfModel& teacher, const State& state,
                                           const std::string& where);

}  // namespace stunt::recipe::detail
