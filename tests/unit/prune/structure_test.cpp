// Which heads and channels structured pruning keeps (the surgery itself is checked against
// transformers in tests/python/test_structured_pruning.py).
#include <ATen/ATen.h>

#include "stunt/core/error.h"
#include "stunt/prune/structure.h"
#include "test_util.h"

namespace stunt::prune {
namespace {

StructureLayout layout_with(int64_t heads, int64_t kv_heads, std::vector<int> shared_stacks) {
  StructureLayout layout;
  layout.heads = heads;
  layout.kv_heads = kv_heads;
  layout.head_dim = 8;
  for (size_t i = 0; i < shared_stacks.size(); ++i) {
    AttentionModule module;
    module.block = static_cast<int>(i);
    module.shared_bias_stack = shared_stacks[i];
    layout.attention.push_back(module);
  }
  return layout;
}

at::Tensor scores(std::vector<double> values) { return at::tensor(values, at::kDouble); }

TEST(StructuredPruning, GroupedQueryAttentionLosesTheLowestHeadOfEveryGroup) {
  // 4 query heads on 2 key/value heads: heads 0-1 share one, 2-3 the other.
  const StructureLayout layout = layout_with(4, 2, {-1, -1});
  const auto kept = choose_heads(layout, {scores({5, 1, 2, 9}), scores({0, 3, 4, 1})}, 2, "r");
  EXPECT_EQ(kept[0], (std::vector<int64_t>{0, 3}));
  EXPECT_EQ(kept[1], (std::vector<int64_t>{1, 2}));
  // One head of 4 cannot split over 2 groups; all 4 leave nothing.
  EXPECT_THROW_WITH(choose_heads(layout, {scores({1, 2, 3, 4}), scores({1, 2, 3, 4})}, 1, "r.x"),
                    ValueError, "use a multiple of 2");
  EXPECT_THROW_WITH(choose_heads(layout, {scores({1, 2, 3, 4}), scores({1, 2, 3, 4})}, 4, "r.x"),
                    ValueError, "keep at least one head");
}

TEST(StructuredPruning, WithoutGroupingTheLowestHeadsGoAnywhere) {
  const StructureLayout layout = layout_with(4, 4, {-1});
  EXPECT_EQ(choose_heads(layout, {scores({5, 1, 2, 9})}, 2, "r")[0], (std::vector<int64_t>{0, 3}));
}

TEST(StructuredPruning, HeadsSharingAPositionBiasAreChosenTogether) {
  // T5: modules 0 and 1 are one stack's self-attention (one bias), module 2 is cross-attention.
  const StructureLayout layout = layout_with(4, 4, {0, 0, -1});
  const auto kept = choose_heads(
      layout, {scores({1, 10, 3, 4}), scores({10, 1, 3, 4}), scores({10, 1, 3, 4})}, 1, "r");
  // Summed: 11, 11, 6, 8: head 2 goes from both self-attention modules.
  EXPECT_EQ(kept[0], (std::vector<int64_t>{0, 1, 3}));
  EXPECT_EQ(kept[1], kept[0]);
  EXPECT_EQ(kept[2], (std::vector<int64_t>{0, 2, 3}));
}

TEST(StructuredPruning, ChannelsKeepTheMostImportantInOrder) {
  const auto kept = choose_channels({scores({0.5, 3, 0.1, 2, 7, 0.2})}, 3);
  EXPECT_TRUE(at::equal(kept[0], at::tensor({1, 3, 4}, at::kLong))) << kept[0];
  EXPECT_THROW(choose_channels({scores({1, 2})}, 2), Error);
}

TEST(StructuredPruning, ImportanceNamesAreChecked) {
  EXPECT_EQ(parse_importance("taylor", "r"), Importance::Taylor);
  EXPECT_THROW_WITH(parse_importance("gradient", "r.importance"), ValueError,
                    "r.importance: importance 'gradient' is not known");
}

}  // namespace
}  // namespace stunt::prune
