#include "detail/block_pairs.h"

#include <string>
#include <vector>

#include "stunt/core/error.h"
#include "stunt/core/name_pattern.h"
#include "stunt/core/strings.h"
#include "stunt/model/architecture.h"

namespace stunt::recipe::detail {
namespace {

std::vector<const NamedBlock*> matching(const std::vector<NamedBlock>& blocks,
                                        const std::string& pattern) {
  std::vector<const NamedBlock*> out;
  for (const NamedBlock& b : blocks) {
    if (name_matches(pattern, b.name)) out.push_back(&b);
  }
  return out;
}

std::string known_names(const std::vector<NamedBlock>& blocks) {
  if (blocks.empty()) return "none";
  return str(blocks.front().name, " to ", blocks.back().name, " (", blocks.size(), " blocks)");
}

}  // namespace

std::vector<NamedBlock> named_blocks(const model::HfModel& m) {
  std::vector<NamedBlock> out;
  for (const model::BlockStack& stack : model::structure_layout(m).stacks) {
    for (int64_t i = 0; i < stack.count; ++i) {
      out.push_back(
          {str(stack.prefix, i), stack.prefix, i, stack.first_block + static_cast<int>(i)});
    }
  }
  return out;
}

std::vector<TargetEntry> read_target_entries(const Value& targets, const std::string& where) {
  if (targets.is_string()) {
    return {{targets.get<std::string>(), targets.get<std::string>(), false}};
  }
  std::vector<TargetEntry> out;
  for (const Value& entry : targets) {
    if (entry.is_string()) {
      out.push_back({entry.get<std::string>(), entry.get<std::string>(), false});
      continue;
    }
    STUNT_CHECK_AS(
        RecipeError,
        entry.is_array() && entry.size() == 2 && entry[0].is_string() && entry[1].is_string(),
        where, ".targets: ", entry.dump(),
        " is neither a block name nor a [student, teacher] pair of block names");
    out.push_back({entry[0].get<std::string>(), entry[1].get<std::string>(), true});
  }
  return out;
}

std::vector<BlockPair> resolve_block_pairs(const std::vector<TargetEntry>& entries,
                                           const model::HfModel& student,
                                           const model::HfModel& teacher, const State& state,
                                           const std::string& where) {
  const std::vector<NamedBlock> s_blocks = named_blocks(student);
  const std::vector<NamedBlock> t_blocks = named_blocks(teacher);
  std::vector<BlockPair> out;
  for (const TargetEntry& e : entries) {
    const std::vector<const NamedBlock*> s = matching(s_blocks, e.student);
    STUNT_CHECK_AS(RecipeError, !s.empty(), where, ": '", e.student,
                   "' names no block of the student; its blocks are ", known_names(s_blocks),
                   " (distillation pairs whole blocks)");
    if (!e.paired) {
      // Built from the teacher in this recipe: block i came from teacher block kept[i].
      bool mapped = true;
      std::vector<BlockPair> built;
      for (const NamedBlock* b : s) {
        const auto kept = state.kept_blocks.find(b->stack_prefix);
        const int64_t origin = kept == state.kept_blocks.end() || kept->second.empty()
                                   ? b->index_in_stack
                                   : kept->second.at(static_cast<size_t>(b->index_in_stack));
        const std::string teacher_name = str(b->stack_prefix, origin);
        const std::vector<const NamedBlock*> t = matching(t_blocks, teacher_name);
        if (t.size() != 1) {
          mapped = false;
          break;
        }
        built.push_back({b->name, teacher_name, b->block, t.front()->block});
      }
      if (mapped) {
        out.insert(out.end(), built.begin(), built.end());
        continue;
      }
    }
    const std::vector<const NamedBlock*> t = matching(t_blocks, e.teacher);
    STUNT_CHECK_AS(RecipeError, !t.empty(), where, ": '", e.teacher,
                   "' names no block of the teacher; its blocks are ", known_names(t_blocks));
    STUNT_CHECK_AS(RecipeError, s.size() == t.size(), where, ": '", e.student, "' names ", s.size(),
                   " student blocks and '", e.teacher, "' ", t.size(),
                   " teacher blocks; pair them by name ([student, teacher]), or build the "
                   "student from the teacher in this recipe (LayerPruningModifier) so that the "
                   "pairs follow");
    for (size_t i = 0; i < s.size(); ++i) {
      out.push_back({s[i]->name, t[i]->name, s[i]->block, t[i]->block});
    }
  }
  return out;
}

}  // namespace stunt::recipe::detail
