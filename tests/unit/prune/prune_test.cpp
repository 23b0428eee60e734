#include <ATen/ATen.h>
#include <torch/nn/modules/linear.h>
#include <torch/optim/adamw.h>
#include <torch/optim/sgd.h>

#include "layer_data.h"
#include "stunt/core/error.h"
#include "stunt/kernels/hessian.h"
#include "stunt/prune/magnitude.h"
#include "stunt/prune/mask.h"
#include "stunt/prune/parameter_masks.h"
#include "stunt/prune/sparsegpt.h"
#include "stunt/prune/wanda.h"
#include "stunt/quant/gptq.h"
#include "stunt/quant/quant_args.h"
#include "test_util.h"

namespace stunt::prune {
namespace {

using test::correlated_inputs;
using test::output_error;

/// Every group of m consecutive weights of every row, counted exactly.
int64_t max_nonzeros_per_group(const at::Tensor& w, int64_t m) {
  return (w != 0).reshape({-1, m}).sum(1).max().item<int64_t>();
}

at::Tensor hessian_of(const at::Tensor& x) {
  kernels::HessianAccumulator h(x.size(1), at::kFloat);
  h.add(x.reshape({8, -1, x.size(1)}));
  return h.hessian();
}

TEST(Mask, ParsesStructuresAndRefusesOthers) {
  EXPECT_TRUE(parse_mask_structure("unstructured", "r").unstructured());
  EXPECT_TRUE(parse_mask_structure("0:0", "r").unstructured());
  const MaskStructure s = parse_mask_structure("2:4", "r");
  EXPECT_EQ(s.n, 2);
  EXPECT_EQ(s.m, 4);
  EXPECT_EQ(s.to_string(), "2:4");
  EXPECT_DOUBLE_EQ(parse_mask_structure("4:8", "r").sparsity(), 0.5);
  for (const char* bad : {"4:2", "2:2", "0:4", "2:", ":4", "2:4x", "two:four", "2-4"}) {
    EXPECT_THROW_WITH(parse_mask_structure(bad, "recipe.yaml: stage.SparseGPTModifier"), ValueError,
                      "recipe.yaml: stage.SparseGPTModifier: mask_structure '");
  }
}

TEST(Mask, RefusesBadSparsityAndGroupsThatDoNotTile) {
  EXPECT_THROW_WITH(check_prunable({}, 1.0, 64, "model.layers.0.mlp.up_proj", "r.yaml: s.M"),
                    ValueError,
                    "r.yaml: s.M: sparsity 1 for model.layers.0.mlp.up_proj is "
                    "outside [0, 1)");
  EXPECT_THROW_WITH(check_prunable({}, -0.1, 64, "l", "w"), ValueError, "outside [0, 1)");
  EXPECT_THROW_WITH(check_prunable({2, 4}, 0.5, 66, "model.layers.1.mlp.down_proj", "r.yaml: s.M"),
                    ValueError,
                    "r.yaml: s.M: mask_structure 2:4 needs in_features to be a multiple of 4, "
                    "but model.layers.1.mlp.down_proj takes 66");
  EXPECT_NO_THROW(check_prunable({2, 4}, 0.5, 64, "l", "w"));
}

TEST(Mask, MagnitudeNofMKeepsTheLargestOfEveryGroup) {
  const at::Tensor w =
      at::tensor({0.1f, -3.0f, 2.0f, 0.5f, 4.0f, 0.0f, -0.2f, 1.0f}).reshape({2, 4});
  const PruneResult r = magnitude_prune(w, 0.0, {2, 4}, "l");
  EXPECT_TRUE(r.weight.equal(
      at::tensor({0.0f, -3.0f, 2.0f, 0.0f, 4.0f, 0.0f, 0.0f, 1.0f}).reshape({2, 4})));
  EXPECT_TRUE(satisfies(r.weight, {2, 4}));
  EXPECT_FALSE(satisfies(w, {2, 4}));
  EXPECT_EQ(detect_structure(r.weight).to_string(), "2:4");
  EXPECT_TRUE(detect_structure(w).unstructured());
  const at::Tensor big = at::randn({64, 128});
  const PruneResult u = magnitude_prune(big, 0.3, {}, "l");
  EXPECT_EQ((u.weight == 0).sum().item<int64_t>(), static_cast<int64_t>(64 * 128 * 0.3));
  // The kept weights are all larger than every pruned one.
  EXPECT_GE(big.abs().masked_select(u.pruned.logical_not()).min().item<float>(),
            big.abs().masked_select(u.pruned).max().item<float>());
}

TEST(SparseGpt, BeatsMagnitudeOnTheLayerOutput) {
  const at::Tensor x = correlated_inputs(1024, 128);
  const at::Tensor w = at::randn({48, 128});
  for (const MaskStructure structure :
       {MaskStructure{}, MaskStructure{2, 4}, MaskStructure{4, 8}}) {
    SparseGptOptions options;
    options.sparsity = 0.5;
    options.structure = structure;
    options.block_size = 32;
    options.layer = "test.layer";
    const PruneResult r = sparsegpt_prune(w, hessian_of(x), options);
    const PruneResult magnitude = magnitude_prune(w, 0.5, structure, "test.layer");
    EXPECT_TRUE(r.weight.masked_select(r.pruned).eq(0).all().item<bool>());
    if (structure.unstructured()) {
      // llm-compressor's per-block threshold prunes its target plus the tie at the cut.
      EXPECT_NEAR(sparsity_of(r.weight), 0.5, 0.01);
    } else {
      EXPECT_EQ(max_nonzeros_per_group(r.weight, structure.m), structure.m - structure.n);
      EXPECT_DOUBLE_EQ(sparsity_of(r.weight), 0.5);
    }
    EXPECT_LT(output_error(x, w, r.weight), 0.8 * output_error(x, w, magnitude.weight))
        << structure.to_string();
  }
}

TEST(SparseGpt, PreservesAnExistingMaskAndRefusesTooManyZeros) {
  const at::Tensor x = correlated_inputs(512, 64);
  at::Tensor w = magnitude_prune(at::randn({16, 64}), 0.25, {}, "l").weight;
  SparseGptOptions options;
  options.sparsity = 0.5;
  options.preserve_mask = true;
  options.block_size = 16;
  const PruneResult r = sparsegpt_prune(w, hessian_of(x), options);
  EXPECT_TRUE(r.weight.masked_select(w == 0).eq(0).all().item<bool>());
  EXPECT_GE(sparsity_of(r.weight), 0.5);
  options.sparsity = 0.2;
  options.layer = "model.layers.2.self_attn.o_proj";
  EXPECT_THROW_WITH(sparsegpt_prune(w, hessian_of(x), options), ValueError,
                    "model.layers.2.self_attn.o_proj: preserve_sparsity_mask keeps 0.25");
}

TEST(Wanda, PrunesPerRowByWeightTimesInputNorm) {
  // Column 0 carries large inputs: its small weights outrank column 1's larger ones.
  const at::Tensor w = at::tensor({0.5f, 1.0f, 3.0f, 2.0f, 0.4f, 1.0f, 0.1f, 0.2f}).reshape({2, 4});
  InputNormAccumulator norms(4);
  norms.add(at::tensor({10.0f, 1.0f, 1.0f, 1.0f}).reshape({1, 1, 4}));
  norms.add(at::tensor({10.0f, 1.0f, 1.0f, 1.0f}).reshape({1, 1, 4}));
  EXPECT_EQ(norms.samples(), 2);
  EXPECT_TRUE(norms.squared_norms().equal(at::tensor({100.0f, 1.0f, 1.0f, 1.0f})));
  const PruneResult r = wanda_prune(w, norms.squared_norms(), 0.5, {}, "l");
  EXPECT_TRUE(
      r.weight.equal(at::tensor({0.5f, 0.0f, 3.0f, 0.0f, 0.4f, 1.0f, 0.0f, 0.0f}).reshape({2, 4})));
  const PruneResult nm = wanda_prune(w, norms.squared_norms(), 0.5, {2, 4}, "l");
  EXPECT_TRUE(nm.weight.equal(r.weight));
}

TEST(Gptq, KeepsAPruningMask) {
  const at::Tensor x = correlated_inputs(512, 64);
  const PruneResult sparse = magnitude_prune(at::randn({32, 64}), 0.5, {2, 4}, "l");
  for (const char* scheme : {R"({"num_bits": 4, "strategy": "group", "group_size": 16})",
                             R"({"num_bits": 4, "strategy": "channel", "symmetric": false,
                                 "actorder": "weight"})"}) {
    const quant::QuantArgs args =
        quant::QuantArgs::from_json(nlohmann::ordered_json::parse(scheme));
    quant::GptqOptions options;
    options.block_size = 16;
    options.pruned = sparse.pruned;
    const quant::GptqResult kept =
        quant::gptq_quantize(sparse.weight, hessian_of(x), args, options);
    EXPECT_EQ(max_nonzeros_per_group(kept.weight, 4), 2) << scheme;
    EXPECT_TRUE(kept.weight.masked_select(sparse.pruned).eq(0).all().item<bool>()) << scheme;
    // Without the mask GPTQ refills the pruned weights (llm-compressor 0.14's behaviour).
    options.pruned = at::Tensor();
    const quant::GptqResult refilled =
        quant::gptq_quantize(sparse.weight, hessian_of(x), args, options);
    EXPECT_GT(max_nonzeros_per_group(refilled.weight, 4), 2) << scheme;
  }
}

TEST(ParameterMasks, SurviveOptimizerSteps) {
  for (const bool adam : {false, true}) {
    torch::manual_seed(0);
    torch::nn::Linear layer(16, 8);
    const PruneResult r = magnitude_prune(layer->weight.detach(), 0.5, {2, 4}, "l");
    ParameterMasks masks;
    masks.add("weight", layer->weight, r.pruned);
    std::unique_ptr<torch::optim::Optimizer> optimizer;
    if (adam) {
      optimizer = std::make_unique<torch::optim::AdamW>(
          layer->parameters(), torch::optim::AdamWOptions(0.05).weight_decay(0.1));
    } else {
      optimizer = std::make_unique<torch::optim::SGD>(
          layer->parameters(), torch::optim::SGDOptions(0.1).momentum(0.9).weight_decay(0.01));
    }
    const at::Tensor x = at::randn({32, 16});
    const at::Tensor y = at::randn({32, 8});
    const at::Tensor before = layer->weight.detach().clone();
    for (int step = 0; step < 5; ++step) {
      optimizer->zero_grad();
      const at::Tensor loss = (layer->forward(x) - y).pow(2).mean();
      loss.backward();
      EXPECT_TRUE(layer->weight.grad().masked_select(r.pruned).eq(0).all().item<bool>());
      optimizer->step();
      masks.apply();
    }
    EXPECT_TRUE(layer->weight.detach().masked_select(r.pruned).eq(0).all().item<bool>());
    EXPECT_EQ(max_nonzeros_per_group(layer->weight.detach(), 4), 2);
    // The kept weights did train.
    EXPECT_FALSE(layer->weight.detach().equal(before.masked_fill(r.pruned, 0)));
  }
}

}  // namespace
}  // namespace stunt::prune
