// Data-parallel training over Gloo, with the ranks as threads of this process: the collectives
// give what their names say, and two ranks with one micro-batch each train a tiny Llama (with
// gradual pruning) to the weights of one process taking both micro-batches per step.
#include "stunt/train/distributed.h"

#include <ATen/ATen.h>

#include <cstdlib>

#include "stunt/core/error.h"
#include "stunt/model/load.h"
#include "stunt/train/gradual_pruning.h"
#include "stunt/train/trainer.h"
#include "test_util.h"
#include "tiny_llama.h"
#include "train/pattern_windows.h"
#include "train/run_ranks.h"

namespace stunt::train {
namespace {

namespace tiny = test::tiny_llama;

TEST(ProcessGroupTest, CollectivesGiveSumsMeansRootValuesAndEveryRanksTensor) {
  test::run_ranks(2, [](ProcessGroup& group) {
    const double r = group.rank();
    // Mixed dtypes, a non-contiguous view and one tensor above the bucket size.
    at::Tensor a = at::full({3, 4}, r + 1.0, at::kFloat);
    at::Tensor b = at::arange(6, at::kDouble).reshape({2, 3}).t() * (r + 1.0);
    at::Tensor big = at::full({9 << 20}, r, at::kFloat);
    at::Tensor ids = at::full({5}, static_cast<int64_t>(r) + 10, at::kLong);
    group.sum({a, b, big, ids});
    EXPECT_TRUE(at::equal(a, at::full({3, 4}, 3.0f)));
    EXPECT_TRUE(at::equal(b, at::arange(6, at::kDouble).reshape({2, 3}).t() * 3.0));
    EXPECT_EQ(big.min().item<float>(), 1.0f);
    EXPECT_EQ(big.max().item<float>(), 1.0f);
    EXPECT_TRUE(at::equal(ids, at::full({5}, 21, at::kLong)));

    at::Tensor mean = at::full({2}, r * 4.0, at::kFloat);
    group.average({mean});
    EXPECT_TRUE(at::equal(mean, at::full({2}, 2.0f)));
    at::Tensor integers = at::zeros({1}, at::kLong);
    EXPECT_THROW(group.average({integers}), ValueError);

    at::Tensor root = at::full({4}, r, at::kFloat);
    group.broadcast({root}, /*root=*/1);
    EXPECT_TRUE(at::equal(root, at::ones({4})));

    const auto gathered = group.all_gather(at::full({2}, r + 5.0, at::kDouble));
    ASSERT_EQ(gathered.size(), 2u);
    EXPECT_TRUE(at::equal(gathered[0], at::full({2}, 5.0, at::kDouble)));
    EXPECT_TRUE(at::equal(gathered[1], at::full({2}, 6.0, at::kDouble)));
  });
}

class DataParallelTrainerTest : public ::testing::Test {
 protected:
  void SetUp() override { tiny::write(dir_ / "tiny", tiny::config(), tiny::weights()); }

  static TrainerOptions options(int64_t accumulation) {
    TrainerOptions o;
    o.batch_size = 2;
    o.gradient_accumulation = accumulation;
    o.epochs = 3;
    o.learning_rate.peak = 1e-2;
    o.learning_rate.warmup_steps = 2;
    o.max_grad_norm = 1.0;
    o.seed = 3;
    o.log_every = 0;
    return o;
  }

  /// Trains a fresh tiny Llama with gradual pruning of its MLPs; returns its tensors.
  std::vector<at::Tensor> train(TrainerOptions o) {
    auto model = model::load_dense_model(dir_ / "tiny");
    const TokenWindowData data = test::pattern_windows(12, 7);
    GradualPruningOptions pruning_options;
    pruning_options.name = "stage.GMPruningModifier";
    pruning_options.schedule = {.start_epoch = 0.0,
                                .end_epoch = 2.0,
                                .update_frequency = 0.5,
                                .init_sparsity = 0.2,
                                .final_sparsity = 0.5};
    GradualPruning pruning(model->match({"re:.*mlp.*"}), pruning_options);
    Trainer trainer(*model, data, causal_lm_loss, std::move(o));
    trainer.add_callbacks(pruning);
    EXPECT_EQ(trainer.steps_per_epoch(), 3);
    trainer.run();
    std::vector<at::Tensor> tensors;
    for (const auto& [name, p] : model->prepare_training()) tensors.push_back(p.detach().clone());
    return tensors;
  }

  test::TempDir dir_;
};

TEST_F(DataParallelTrainerTest, TwoRanksEqualOneProcessWithTheSameGlobalBatch) {
  const std::vector<at::Tensor> single = train(options(/*accumulation=*/2));
  std::vector<std::vector<at::Tensor>> ranks(2);
  test::run_ranks(2, [&](ProcessGroup& group) {
    TrainerOptions o = options(/*accumulation=*/1);
    o.process_group = std::shared_ptr<ProcessGroup>(&group, [](ProcessGroup*) {});
    ranks[static_cast<size_t>(group.rank())] = train(o);
  });
  ASSERT_EQ(ranks[0].size(), single.size());
  for (size_t i = 0; i < single.size(); ++i) {
    EXPECT_TRUE(at::equal(ranks[0][i], ranks[1][i])) << "tensor " << i << " differs across ranks";
    EXPECT_TRUE(at::allclose(ranks[0][i], single[i], 1e-5, 1e-6))
        << "tensor " << i << ": largest difference "
        << (ranks[0][i] - single[i]).abs().max().item<double>();
  }
}

/// Sets an environment variable for one scope.
class ScopedVariable {
 public:
  ScopedVariable(const char* name, const char* value) : name_(name) { setenv(name, value, 1); }
  ~ScopedVariable() { unsetenv(name_); }

 private:
  const char* name_;
};

TEST(DistributedEnvironmentTest, ReadsTorchrunsVariablesAndNamesAMalformedOne) {
  unsetenv("WORLD_SIZE");
  EXPECT_FALSE(distributed_environment().has_value());
  ScopedVariable world("WORLD_SIZE", "4");
  ScopedVariable rank("RANK", "2");
  ScopedVariable local("LOCAL_RANK", "0");
  ScopedVariable addr("MASTER_ADDR", "10.0.0.7");
  {
    ScopedVariable port("MASTER_PORT", "29617");
    const auto env = distributed_environment();
    ASSERT_TRUE(env.has_value());
    EXPECT_EQ(env->world_size, 4);
    EXPECT_EQ(env->rank, 2);
    EXPECT_EQ(env->local_rank, 0);
    EXPECT_EQ(env->master_addr, "10.0.0.7");
    EXPECT_EQ(env->master_port, 29617);
  }
  {
    ScopedVariable port("MASTER_PORT", "29617x");
    EXPECT_THROW_WITH(distributed_environment(), ValueError, "MASTER_PORT=29617x");
  }
  ScopedVariable bad_rank("RANK", "4");
  EXPECT_THROW_WITH(distributed_environment(), ValueError, "RANK=4");
}

}  // namespace
}  // namespace stunt::train
