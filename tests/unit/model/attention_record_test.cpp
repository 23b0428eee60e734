// Model::set_keep_attentions: every block's self-attention probabilities and values, computed as
// explicit products, leave the forward's result as it is.
#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <gtest/gtest.h>

#include "stunt/core/error.h"
#include "stunt/model/load.h"
#include "test_util.h"
#include "tiny_llama.h"

namespace stunt::model {
namespace {

namespace tiny = test::tiny_llama;

TEST(KeptAttention, ProbabilitiesAndValuesOfEveryBlockWithTheSameForward) {
  test::TempDir dir;
  tiny::write(dir / "tiny", tiny::config(), tiny::weights());
  auto model = load_dense_model(dir / "tiny");
  Batch batch;
  batch.input_ids = at::randint(tiny::kVocab, {2, 7}, at::kLong);
  batch.attention_mask = at::ones({2, 7}, at::kLong);
  batch.attention_mask.index_put_({1, at::indexing::Slice(5)}, 0);  // right padding in row 1
  const Output plain = model->forward(batch);
  EXPECT_TRUE(plain.attentions.empty());

  model->prepare_training();  // weights that require grad: the kept maps carry the graph
  model->set_keep_attentions(true);
  const Output kept = model->forward_with_grad(batch);
  EXPECT_TRUE(at::allclose(kept.logits, plain.logits, 1e-5, 1e-6));
  ASSERT_EQ(kept.attentions.size(), static_cast<size_t>(tiny::kLayers));
  for (const AttentionRecord& r : kept.attentions) {
    // Grouped-query: 2 key/value heads repeated for 4 query heads.
    EXPECT_EQ(r.probabilities.sizes(), (at::IntArrayRef{2, tiny::kHeads, 7, 7}));
    EXPECT_EQ(r.values.sizes(),
              (at::IntArrayRef{2, tiny::kHeads, 7, tiny::kHidden / tiny::kHeads}));
    EXPECT_TRUE(r.values.select(1, 0).equal(r.values.select(1, 1)));
    EXPECT_TRUE(r.probabilities.requires_grad());
    const at::Tensor p = r.probabilities.detach();
    EXPECT_TRUE(at::allclose(p.sum(-1), at::ones({2, tiny::kHeads, 7}), 1e-5, 1e-6));
    // Causal: no query sees a later key; row 1's padding keys get nothing.
    EXPECT_EQ(p.triu(1).abs().max().item<float>(), 0.0f);
    EXPECT_EQ(p[1].narrow(-1, 5, 2).abs().max().item<float>(), 0.0f);
  }
  model->set_keep_attentions(false);
  EXPECT_TRUE(model->forward(batch).attentions.empty());
}

}  // namespace
}  // namespace stunt::model
