// The training loop on a tiny Llama: gradients reach every trainable tensor, training lowers
// the loss, a run stopped by a signal resumes to the same weights bit for bit, and the refusals.
#include "stunt/train/trainer.h"

#include <ATen/ATen.h>

#include <csignal>
#include <fstream>

#include "stunt/core/error.h"
#include "stunt/model/load.h"
#include "stunt/prune/gradual_schedule.h"
#include "test_util.h"
#include "tiny_llama.h"
#include "train/pattern_windows.h"

namespace stunt::train {
namespace {

namespace tiny = test::tiny_llama;

using test::pattern_windows;

class TrainerTest : public ::testing::Test {
 protected:
  void SetUp() override { tiny::write(dir_ / "tiny", tiny::config(), tiny::weights()); }
  std::unique_ptr<model::Model> load() { return model::load_dense_model(dir_ / "tiny"); }
  static TrainerOptions options() {
    TrainerOptions o;
    o.batch_size = 2;
    o.gradient_accumulation = 2;
    o.learning_rate.peak = 1e-2;
    o.learning_rate.warmup_steps = 2;
    o.learning_rate.decay = LearningRateShape::Linear;
    o.max_grad_norm = 1.0;
    o.seed = 7;
    o.log_every = 0;
    return o;
  }
  test::TempDir dir_;
};

TEST_F(TrainerTest, PrepareTrainingListsEveryTensorOnceAndTiedWeightsShareOne) {
  auto model = load();
  const auto params = model->prepare_training();
  // 7 linear layers and 2 norms per block, the final norm, and one embedding for embed_tokens
  // and the tied lm_head.
  EXPECT_EQ(params.size(), static_cast<size_t>(9 * tiny::kLayers + 2));
  for (const auto& [name, p] : params) {
    EXPECT_TRUE(p.requires_grad() && p.is_leaf()) << name;
  }
  EXPECT_TRUE(model->layer("lm_head").weight.is_same(model->layer("model.embed_tokens").weight));
  EXPECT_EQ(model->prepare_training().size(), params.size());
}

TEST_F(TrainerTest, ForwardWithGradGivesTheInferenceLogitsAndReachesEveryTensor) {
  auto model = load();
  const TokenWindowData data = pattern_windows(4, 9);
  const TrainingBatch batch = data.batch({0, 1, 2});
  const at::Tensor inference = model->forward(batch.inputs).logits;
  const auto params = model->prepare_training();
  const at::Tensor loss = causal_lm_loss(*model, batch).loss;
  const at::Tensor logits = model->forward_with_grad(batch.inputs).logits;
  EXPECT_TRUE(at::allclose(logits.detach(), inference, 1e-5, 1e-6));
  loss.backward();
  for (const auto& [name, p] : params) {
    ASSERT_TRUE(p.grad().defined()) << name << " gets no gradient";
    EXPECT_GT(p.grad().abs().sum().item<double>(), 0.0) << name << " gets a zero gradient";
  }
}

TEST_F(TrainerTest, TiedEmbeddingGradientIsTheDenseOne) {
  // The tied table's lookup sends its gradient as sparse rows (Model::call). Untied, the same
  // model computes both parts densely: their sum must be the tied gradient.
  const TokenWindowData data = pattern_windows(4, 9);
  const TrainingBatch batch = data.batch({0, 1, 2});
  auto untie = [](model::Model& m) {
    model::Layer& head = m.layer("lm_head");
    head.weight = head.weight.detach().clone().requires_grad_(true);
    return head.weight;
  };
  auto tied = load();
  auto tied_params = tied->prepare_training();
  causal_lm_loss(*tied, batch).loss.backward();
  const at::Tensor table = tied->layer("model.embed_tokens").weight;
  ASSERT_FALSE(table.grad().is_sparse());
  auto untied = load();
  untied->prepare_training();
  const at::Tensor head = untie(*untied);
  causal_lm_loss(*untied, batch).loss.backward();
  const at::Tensor expected = untied->layer("model.embed_tokens").weight.grad() + head.grad();
  EXPECT_TRUE(at::allclose(table.grad(), expected, 1e-5, 1e-7));

  // A loss that leaves the head out (the hidden states only) leaves the table's gradient
  // sparse; densify_gradients makes it the dense lookup gradient.
  for (const auto& [name, p] : tied_params) p.mutable_grad().reset();
  tied->forward_with_grad(batch.inputs).hidden.square().sum().backward();
  ASSERT_TRUE(table.grad().is_sparse());
  densify_gradients(tied_params);
  ASSERT_FALSE(table.grad().is_sparse());
  const at::Tensor lookup = untied->layer("model.embed_tokens").weight;
  lookup.mutable_grad().reset();
  untied->forward_with_grad(batch.inputs).hidden.square().sum().backward();
  EXPECT_TRUE(at::allclose(table.grad(), lookup.grad(), 1e-5, 1e-7));
}

TEST_F(TrainerTest, CausalLmLossIsNextTokenCrossEntropy) {
  auto model = load();
  const TokenWindowData data = pattern_windows(2, 6);
  const TrainingBatch batch = data.batch({0, 1});
  const at::Tensor logits = model->forward(batch.inputs).logits;
  // Position t predicts token t + 1: mean of -log softmax over the 2 x 5 predictions.
  const at::Tensor log_probs = at::log_softmax(logits.narrow(1, 0, 5), -1);
  const at::Tensor picked =
      log_probs.gather(-1, batch.labels.narrow(1, 1, 5).unsqueeze(-1)).squeeze(-1);
  EXPECT_NEAR(causal_lm_loss(*model, batch).loss.item<double>(), -picked.mean().item<double>(),
              1e-5);
}

TEST_F(TrainerTest, TrainingLowersTheLoss) {
  auto model = load();
  const TokenWindowData data = pattern_windows(16, 9);
  const double before = causal_lm_loss(*model, data.batch({0, 1, 2, 3})).loss.item<double>();
  TrainerOptions o = options();
  o.max_steps = 100;
  o.learning_rate.decay = LearningRateShape::Constant;
  Trainer trainer(*model, data, causal_lm_loss, o);
  EXPECT_EQ(trainer.steps_per_epoch(), 4);
  const TrainResult result = trainer.run();
  EXPECT_EQ(result.steps, 100);
  EXPECT_DOUBLE_EQ(result.epochs, 25.0);
  const double after = causal_lm_loss(*model, data.batch({0, 1, 2, 3})).loss.item<double>();
  EXPECT_LT(after, 0.5 * before) << "before " << before << ", after " << after;
}

/// Sends SIGINT to the process after a given step, as a user pressing Ctrl-C would.
class InterruptAt : public TrainingCallbacks {
 public:
  explicit InterruptAt(int64_t step) : step_(step) {}
  std::string name() const override { return "interrupt"; }
  void on_optimizer_post_step(const StepInfo& info) override {
    if (info.step == step_) std::raise(SIGINT);
  }

 private:
  int64_t step_;
};

/// Counts steps across a checkpoint, to show callback state survives a resume.
class StepCounter : public TrainingCallbacks {
 public:
  std::string name() const override { return "counter"; }
  void on_optimizer_post_step(const StepInfo& info) override {
    ++steps_;
    sum_ = sum_.defined() ? sum_ + 1 : at::ones({1});
  }
  void save_state(CallbackState& state) const override {
    state.json["steps"] = steps_;
    state.tensors["sum"] = sum_;
  }
  void load_state(const CallbackState& state) override {
    steps_ = state.json.at("steps").get<int64_t>();
    sum_ = state.tensors.at("sum");
  }
  int64_t steps_ = 0;
  at::Tensor sum_;
};

TEST_F(TrainerTest, AnInterruptedRunResumesToTheSameWeightsBitForBit) {
  const TokenWindowData data = pattern_windows(12, 9);
  TrainerOptions o = options();
  o.epochs = 3;  // 3 steps per epoch: 9 steps, shuffled anew each epoch
  o.checkpoint_every = 2;

  auto straight = load();
  o.checkpoint_dir = dir_ / "straight";
  Trainer reference(*straight, data, causal_lm_loss, o);
  StepCounter reference_counter;
  reference.add_callbacks(reference_counter);
  EXPECT_EQ(reference.run().steps, 9);

  o.checkpoint_dir = dir_ / "interrupted";
  {
    auto first = load();
    Trainer trainer(*first, data, causal_lm_loss, o);
    InterruptAt interrupt(5);
    StepCounter counter;
    trainer.add_callbacks(interrupt);
    trainer.add_callbacks(counter);
    const TrainResult stopped = trainer.run();
    EXPECT_TRUE(stopped.interrupted);
    EXPECT_EQ(stopped.steps, 5);
  }
  auto resumed_model = load();
  o.resume = true;
  Trainer resumed(*resumed_model, data, causal_lm_loss, o);
  InterruptAt never(-1);
  StepCounter counter;
  resumed.add_callbacks(never);
  resumed.add_callbacks(counter);
  const TrainResult result = resumed.run();
  EXPECT_EQ(result.resumed_from, 5);
  EXPECT_EQ(result.steps, 9);
  EXPECT_EQ(counter.steps_, 9);
  EXPECT_EQ(counter.sum_.item<float>(), 9.0f);

  const auto a = straight->prepare_training();
  const auto b = resumed_model->prepare_training();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_TRUE(a[i].second.equal(b[i].second)) << a[i].first << " differs after the resume";
  }
}

TEST_F(TrainerTest, RefusesAResumeFromAnotherRunAndDataTooSmallForOneStep) {
  const TokenWindowData data = pattern_windows(8, 9);
  TrainerOptions o = options();
  o.max_steps = 2;
  o.checkpoint_dir = dir_ / "ckpt";
  o.run_fingerprint = "recipe A";
  {
    auto model = load();
    Trainer(*model, data, causal_lm_loss, o).run();
  }
  o.resume = true;
  o.run_fingerprint = "recipe B";
  auto model = load();
  Trainer other(*model, data, causal_lm_loss, o);
  EXPECT_THROW_WITH(other.run(), ValueError, "the checkpoint was written for another run (run");

  const TokenWindowData tiny_data = pattern_windows(3, 9);
  TrainerOptions small = options();  // 2 x 2 = 4 examples a step
  EXPECT_THROW_WITH(Trainer(*model, tiny_data, causal_lm_loss, small).steps_per_epoch(), ValueError,
                    "holds 3 examples, fewer than one optimizer step takes");
}

TEST(EpochOrder, IsASeededPermutationThatChangesEveryEpoch) {
  const auto a = epoch_order(50, 3, 0);
  std::vector<int64_t> sorted = a;
  std::sort(sorted.begin(), sorted.end());
  for (int64_t i = 0; i < 50; ++i) EXPECT_EQ(sorted[static_cast<size_t>(i)], i);
  EXPECT_EQ(a, epoch_order(50, 3, 0));
  EXPECT_NE(a, epoch_order(50, 3, 1));
  EXPECT_NE(a, epoch_order(50, 4, 0));
}

TEST(LearningRateSchedule, WarmsUpThenDecaysAsTransformersSchedules) {
  LearningRateSchedule s{.peak = 1.0,
                         .warmup_steps = 4,
                         .decay = LearningRateShape::Linear,
                         .final_rate = 0.0,
                         .total_steps = 12};
  EXPECT_EQ(s.at(0), 0.0);
  EXPECT_EQ(s.at(2), 0.5);
  EXPECT_EQ(s.at(4), 1.0);
  EXPECT_DOUBLE_EQ(s.at(10), 2.0 / 8.0);  // (12 - 10) / (12 - 4)
  s.decay = LearningRateShape::Cosine;
  EXPECT_DOUBLE_EQ(s.at(8), 0.5);  // halfway through the decay
  s.decay = LearningRateShape::Constant;
  EXPECT_EQ(s.at(11), 1.0);
  s.warmup_steps = 13;
  EXPECT_THROW_WITH(s.validate("training options"), ValueError, "does not fit a run of 12");
}

TEST(LearningRateFunction, FollowsSparsemlsLinearAndCosine) {
  LearningRateFunction f{.shape = LearningRateShape::Linear,
                         .init_lr = 0.1,
                         .final_lr = 0.01,
                         .start_epoch = 1,
                         .end_epoch = 3};
  EXPECT_DOUBLE_EQ(f.at(2), 0.1 + 0.5 * (0.01 - 0.1));
  EXPECT_TRUE(f.covers(3.0));
  EXPECT_FALSE(f.covers(3.5));
  f.shape = LearningRateShape::Cosine;
  EXPECT_DOUBLE_EQ(f.at(1), 0.1);
  EXPECT_NEAR(f.at(3), 0.01, 1e-15);
  EXPECT_DOUBLE_EQ(f.at(2), 0.055);
}

}  // namespace
}  // namespace stunt::train
