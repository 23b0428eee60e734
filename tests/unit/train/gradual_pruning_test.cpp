// Pruning during training on a tiny Llama: the sparsity after every update is the schedule's
// formula, masks hold through the optimizer's steps, N:M grows into an exact pattern, global
// thresholds count across layers, and the state survives a resume.
#include "stunt/train/gradual_pruning.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <cmath>

#include "stunt/core/error.h"
#include "stunt/model/load.h"
#include "test_util.h"
#include "tiny_llama.h"
#include "train/pattern_windows.h"

namespace stunt::train {
namespace {

namespace tiny = test::tiny_llama;

/// Records, after every optimizer step, the schedule's applied sparsity and each layer's zeros.
class Recorder : public TrainingCallbacks {
 public:
  Recorder(const GradualPruning& pruning, std::vector<model::Layer*> layers)
      : pruning_(pruning), layers_(std::move(layers)) {}
  std::string name() const override { return "recorder"; }
  void on_optimizer_post_step(const StepInfo& info) override {
    if (pruning_.last_update() && *pruning_.last_update() == info.epoch) {
      updates.push_back({info.epoch, pruning_.applied_sparsity()});
      std::vector<int64_t> zeros;
      for (const model::Layer* l : layers_) zeros.push_back((l->weight == 0).sum().item<int64_t>());
      zeros_at_update.push_back(zeros);
    }
    for (const model::Layer* l : layers_) {
      EXPECT_GE((l->weight == 0).sum().item<int64_t>(),
                static_cast<int64_t>(std::nearbyint(pruning_.applied_sparsity() *
                                                    static_cast<double>(l->weight.numel()))))
          << l->name << " lost zeros at step " << info.step;
    }
  }
  std::vector<std::pair<double, double>> updates;
  std::vector<std::vector<int64_t>> zeros_at_update;

 private:
  const GradualPruning& pruning_;
  std::vector<model::Layer*> layers_;
};

class GradualPruningTest : public ::testing::Test {
 protected:
  void SetUp() override { tiny::write(dir_ / "tiny", tiny::config(), tiny::weights()); }
  std::unique_ptr<model::Model> load() { return model::load_dense_model(dir_ / "tiny"); }
  static TrainerOptions options(double epochs) {
    TrainerOptions o;
    o.batch_size = 2;
    o.epochs = epochs;
    o.learning_rate.peak = 1e-2;
    o.optimizer.weight_decay = 0.1;  // moves pruned weights off zero unless they are held
    o.log_every = 0;
    return o;
  }
  test::TempDir dir_;
};

TEST_F(GradualPruningTest, EveryUpdateAppliesTheCubicScheduleExactly) {
  auto model = load();
  const TokenWindowData data = test::pattern_windows(8, 6);  // 4 steps per epoch
  auto targets = model->match({"re:.*mlp.*"});
  GradualPruningOptions o;
  o.name = "train_stage.pruning_modifiers.GMPruningModifier";
  o.schedule = {.start_epoch = 0.5,
                .end_epoch = 2.0,
                .update_frequency = 0.25,
                .init_sparsity = 0.1,
                .final_sparsity = 0.6};
  GradualPruning pruning(targets, o);
  Recorder recorder(pruning, targets);
  Trainer trainer(*model, data, causal_lm_loss, options(3));
  trainer.add_callbacks(pruning);
  trainer.add_callbacks(recorder);
  trainer.run();

  // Updates at 0.5, 0.75, ..., 2.0: seven of them, one per step from step 2 to step 8.
  ASSERT_EQ(recorder.updates.size(), 7u);
  for (size_t u = 0; u < recorder.updates.size(); ++u) {
    const auto [epoch, applied] = recorder.updates[u];
    EXPECT_DOUBLE_EQ(epoch, 0.5 + 0.25 * static_cast<double>(u));
    const double x = (epoch - 0.5) / 1.5;
    const double y = 1 - std::pow(1 - x, 3);
    const double expected = u == 0 ? 0.1 : (u == 6 ? 0.6 : y * (0.6 - 0.1) + 0.1);
    EXPECT_DOUBLE_EQ(applied, expected) << "update " << u;
    for (size_t i = 0; i < targets.size(); ++i) {
      // Exactly the scheduled count is pruned (round half to even, as SparseML).
      const auto numel = static_cast<double>(targets[i]->weight.numel());
      EXPECT_EQ(recorder.zeros_at_update[u][i],
                static_cast<int64_t>(std::nearbyint(applied * numel)))
          << targets[i]->name << " at update " << u;
    }
  }
  // After training (a whole epoch past the end) the final masks still hold.
  for (const model::Layer* l : targets) {
    EXPECT_EQ((l->weight == 0).sum().item<int64_t>(),
              static_cast<int64_t>(std::nearbyint(0.6 * static_cast<double>(l->weight.numel()))))
        << l->name;
  }
}

TEST_F(GradualPruningTest, TwoOfFourGrowsIntoAnExactPattern) {
  auto model = load();
  const TokenWindowData data = test::pattern_windows(8, 6);
  auto targets = model->match({"Linear"}, {"lm_head"});
  GradualPruningOptions o;
  o.name = "GMPruningModifier";
  o.structure = prune::parse_mask_structure("2:4", o.name);
  o.schedule = {.start_epoch = 0,
                .end_epoch = 1,
                .update_frequency = 0.25,
                .init_sparsity = 0.0,
                .final_sparsity = 0.5};
  GradualPruning pruning(targets, o);
  Trainer trainer(*model, data, causal_lm_loss, options(2));
  trainer.add_callbacks(pruning);
  trainer.run();
  for (const model::Layer* l : targets) {
    EXPECT_TRUE(prune::satisfies(l->weight, o.structure)) << l->name;
    EXPECT_EQ((l->weight == 0).sum().item<int64_t>(), l->weight.numel() / 2) << l->name;
  }
  o.schedule.final_sparsity = 0.7;
  EXPECT_THROW_WITH(GradualPruning(targets, o), ValueError,
                    "final_sparsity 0.7 exceeds what mask_structure 2:4 allows");
}

TEST_F(GradualPruningTest, GlobalSparsityCountsAcrossLayers) {
  auto model = load();
  const TokenWindowData data = test::pattern_windows(8, 6);
  auto targets = model->match({"re:.*self_attn.*"});
  GradualPruningOptions o;
  o.name = "GlobalMagnitudePruningModifier";
  o.global = true;
  o.schedule = {.start_epoch = 0, .end_epoch = 0, .init_sparsity = 0.4, .final_sparsity = 0.4};
  GradualPruning pruning(targets, o);
  Trainer trainer(*model, data, causal_lm_loss, options(1));
  trainer.add_callbacks(pruning);
  trainer.run();
  int64_t zeros = 0, total = 0;
  std::vector<int64_t> per_layer;
  for (const model::Layer* l : targets) {
    per_layer.push_back((l->weight == 0).sum().item<int64_t>());
    zeros += per_layer.back();
    total += l->weight.numel();
  }
  EXPECT_EQ(zeros, static_cast<int64_t>(std::nearbyint(0.4 * static_cast<double>(total))));
  // One threshold: the layers do not each get 40%.
  bool uneven = false;
  for (size_t i = 0; i < targets.size(); ++i) {
    uneven |=
        per_layer[i] !=
        static_cast<int64_t>(std::nearbyint(0.4 * static_cast<double>(targets[i]->weight.numel())));
  }
  EXPECT_TRUE(uneven);
}

TEST_F(GradualPruningTest, ExistingZerosStayZeroThroughTraining) {
  auto model = load();
  auto targets = model->match({"re:.*down_proj"});
  for (model::Layer* l : targets) {
    c10::NoGradGuard no_grad;
    l->weight.narrow(1, 0, 5).zero_();
  }
  GradualPruningOptions o;
  o.name = "ConstantPruningModifier";
  o.score = PruningScore::ExistingZeros;
  GradualPruning pruning(targets, o);
  const TokenWindowData data = test::pattern_windows(8, 6);
  Trainer trainer(*model, data, causal_lm_loss, options(1));
  trainer.add_callbacks(pruning);
  trainer.run();
  for (const model::Layer* l : targets) {
    EXPECT_EQ(l->weight.narrow(1, 0, 5).abs().sum().item<float>(), 0.0f) << l->name;
    EXPECT_GT(l->weight.narrow(1, 5, 5).abs().sum().item<float>(), 0.0f) << l->name;
  }
}

TEST_F(GradualPruningTest, MovementPrunesWeightsMovingTowardZeroAndResumesExactly) {
  const TokenWindowData data = test::pattern_windows(8, 6);
  GradualPruningOptions o;
  o.name = "MovementPruningModifier";
  o.score = PruningScore::Movement;
  o.schedule = {.start_epoch = 0.5,
                .end_epoch = 1.5,
                .update_frequency = 0.25,
                .init_sparsity = 0.0,
                .final_sparsity = 0.5};
  TrainerOptions t = options(2);
  t.checkpoint_every = 3;

  auto reference = load();
  t.checkpoint_dir = dir_ / "a";
  GradualPruning reference_pruning(reference->match({"re:.*mlp.*"}), o);
  Trainer a(*reference, data, causal_lm_loss, t);
  a.add_callbacks(reference_pruning);
  a.run();

  // The same run stopped after step 3 (its checkpoint), then resumed in a fresh process state.
  t.checkpoint_dir = dir_ / "b";
  {
    auto first = load();
    GradualPruning pruning(first->match({"re:.*mlp.*"}), o);
    TrainerOptions partial = t;
    Trainer b(*first, data, causal_lm_loss, partial);
    b.add_callbacks(pruning);
    // Stop by failing the loss at step 4; the checkpoint of step 3 is on disk.
    class Fail : public TrainingCallbacks {
     public:
      std::string name() const override { return "fail"; }
      void on_batch_start(const StepInfo& info) override {
        if (info.step == 4) throw std::runtime_error("killed");
      }
    } fail;
    b.add_callbacks(fail);
    EXPECT_THROW(b.run(), std::runtime_error);
  }
  auto second = load();
  GradualPruning pruning(second->match({"re:.*mlp.*"}), o);
  class Pass : public TrainingCallbacks {
   public:
    std::string name() const override { return "fail"; }
  } pass;
  t.resume = true;
  Trainer b(*second, data, causal_lm_loss, t);
  b.add_callbacks(pruning);
  b.add_callbacks(pass);
  EXPECT_EQ(b.run().resumed_from, 3);

  for (const std::string& name :
       {std::string("model.layers.0.mlp.up_proj"), std::string("model.layers.1.mlp.down_proj")}) {
    const at::Tensor& w = second->layer(name).weight;
    EXPECT_TRUE(w.equal(reference->layer(name).weight)) << name;
    EXPECT_EQ((w == 0).sum().item<int64_t>(), w.numel() / 2) << name;
  }
}

TEST(GradualPruningOptions, RefuseStructuresThatDoNotTileALayer) {
  model::Layer layer;
  layer.name = "odd";
  layer.weight = at::randn({4, 6});
  GradualPruningOptions o;
  o.name = "GMPruningModifier";
  o.structure = prune::parse_mask_structure("2:4", o.name);
  o.schedule = {.end_epoch = 1, .final_sparsity = 0.5};
  EXPECT_THROW_WITH(GradualPruning({&layer}, o), ValueError,
                    "needs in_features to be a multiple of 4, but odd takes 6");
  o.structure = {};
  o.schedule.start_epoch = 2;
  EXPECT_THROW_WITH(GradualPruning({&layer}, o), ValueError, "comes before start_epoch 2");
}

}  // namespace
}  // namespace stunt::train
