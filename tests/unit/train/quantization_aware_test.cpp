// Quantization-aware training on a tiny Llama: the layers compute with the weights saving will
// write, learned scales move and are saved, training recovers from quantization, and the
// refusals name the layer.
#include "stunt/train/quantization_aware.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include "stunt/core/error.h"
#include "stunt/model/load.h"
#include "test_util.h"
#include "tiny_llama.h"
#include "train/pattern_windows.h"

namespace stunt::train {
namespace {

namespace tiny = test::tiny_llama;
using Json = nlohmann::ordered_json;

quant::QuantScheme w4_group8() {
  return quant::QuantScheme::from_json(Json::parse(
      R"({"targets": ["Linear"], "weights": {"num_bits": 4, "strategy": "group",
          "group_size": 8, "symmetric": false}})"));
}

class QuantizationAwareTest : public ::testing::Test {
 protected:
  void SetUp() override { tiny::write(dir_ / "tiny", tiny::config(), tiny::weights()); }
  std::unique_ptr<model::Model> load() { return model::load_dense_model(dir_ / "tiny"); }
  static TrainerOptions options(int64_t steps) {
    TrainerOptions o;
    o.batch_size = 2;
    o.max_steps = steps;
    o.learning_rate.peak = 5e-3;
    o.log_every = 0;
    return o;
  }
  QuantizationAwareOptions qat(quant::FakeQuantEstimator estimator) {
    QuantizationAwareOptions o;
    o.name = "train_stage.QuantizationModifier";
    o.scheme = w4_group8();
    o.estimator = estimator;
    return o;
  }
  test::TempDir dir_;
};

TEST_F(QuantizationAwareTest, LayersComputeWithTheWeightsThatSavingWrites) {
  auto model = load();
  auto targets = model->match({"Linear"}, {"lm_head"});
  const TokenWindowData data = test::pattern_windows(8, 7);
  QuantizationAwareTraining training(targets, qat(quant::FakeQuantEstimator::StraightThrough));
  Trainer trainer(*model, data, causal_lm_loss, options(6));
  trainer.add_callbacks(training);
  trainer.run();
  ASSERT_TRUE(training.enabled());

  const model::Batch batch = data.batch({0, 1}).inputs;
  const at::Tensor fake = model->forward(batch).logits;
  quant::QuantizationPlan plan;
  training.finalize(plan);
  EXPECT_FALSE(training.enabled());
  // The plain model with each weight replaced by its quantized value computes the same.
  {
    c10::NoGradGuard no_grad;
    for (model::Layer* l : targets) {
      const quant::LayerQuantization* record = plan.find(l->name);
      ASSERT_NE(record, nullptr) << l->name;
      l->weight.copy_(quant::fake_quantize_weight(l->weight, record->weight, *w4_group8().weights));
    }
  }
  EXPECT_TRUE(at::allclose(model->forward(batch).logits, fake, 1e-5, 1e-6));
}

TEST_F(QuantizationAwareTest, LearnedScalesMoveAndTrainingLowersTheQuantizedLoss) {
  const TokenWindowData data = test::pattern_windows(16, 9);
  const TrainingBatch probe = data.batch({0, 1, 2, 3});

  // The quantized model's loss before training.
  auto model = load();
  auto targets = model->match({"Linear"}, {"lm_head"});
  QuantizationAwareTraining training(targets, qat(quant::FakeQuantEstimator::LearnedStepSize));
  const at::Tensor initial_scale = training.weight_qparams(0).scale.detach().clone();
  training.on_train_start(StepInfo{});
  const double before = causal_lm_loss(*model, probe).loss.item<double>();

  TrainerOptions o = options(100);
  o.learning_rate.peak = 1e-2;
  Trainer trainer(*model, data, causal_lm_loss, o);
  trainer.add_callbacks(training);
  trainer.run();
  const double after = causal_lm_loss(*model, probe).loss.item<double>();
  EXPECT_LT(after, 0.5 * before) << "before " << before << ", after " << after;
  // The optimizer moved the scales: they are learned, not observed.
  EXPECT_FALSE(training.weight_qparams(0).scale.detach().equal(initial_scale));
}

TEST_F(QuantizationAwareTest, ResumesToTheSameScalesAndWeights) {
  const TokenWindowData data = test::pattern_windows(8, 7);
  TrainerOptions o = options(8);
  o.checkpoint_every = 3;
  o.checkpoint_dir = dir_ / "a";
  auto a = load();
  QuantizationAwareTraining qa(a->match({"re:.*mlp.*"}),
                               qat(quant::FakeQuantEstimator::LearnedStepSize));
  Trainer ta(*a, data, causal_lm_loss, o);
  ta.add_callbacks(qa);
  ta.run();

  o.checkpoint_dir = dir_ / "b";
  class StopAt : public TrainingCallbacks {
   public:
    std::string name() const override { return "stop"; }
    void on_batch_start(const StepInfo& info) override {
      if (info.step == 5 && armed) throw std::runtime_error("killed");
    }
    bool armed = true;
  };
  {
    auto b = load();
    QuantizationAwareTraining qb(b->match({"re:.*mlp.*"}),
                                 qat(quant::FakeQuantEstimator::LearnedStepSize));
    StopAt stop;
    Trainer tb(*b, data, causal_lm_loss, o);
    tb.add_callbacks(qb);
    tb.add_callbacks(stop);
    EXPECT_THROW(tb.run(), std::runtime_error);
  }
  auto c = load();
  QuantizationAwareTraining qc(c->match({"re:.*mlp.*"}),
                               qat(quant::FakeQuantEstimator::LearnedStepSize));
  StopAt disarmed;
  disarmed.armed = false;
  o.resume = true;
  Trainer tc(*c, data, causal_lm_loss, o);
  tc.add_callbacks(qc);
  tc.add_callbacks(disarmed);
  EXPECT_EQ(tc.run().resumed_from, 3);
  for (size_t i = 0; i < 6; ++i) {
    EXPECT_TRUE(qa.weight_qparams(i).scale.equal(qc.weight_qparams(i).scale)) << i;
  }
  EXPECT_TRUE(a->layer("model.layers.1.mlp.up_proj")
                  .weight.equal(c->layer("model.layers.1.mlp.up_proj").weight));
}

TEST_F(QuantizationAwareTest, RefusesLayersAndSchemesItCannotTrain) {
  auto model = load();
  QuantizationAwareOptions o = qat(quant::FakeQuantEstimator::StraightThrough);
  EXPECT_THROW_WITH(QuantizationAwareTraining({&model->layer("model.embed_tokens")}, o), ValueError,
                    "fake-quantizes linear layers only");
  o.scheme = quant::QuantScheme::from_json(Json::parse(
      R"({"targets": ["Linear"], "weights": {"num_bits": 4, "strategy": "group",
          "group_size": 10}})"));
  EXPECT_THROW_WITH(QuantizationAwareTraining(model->match({"re:.*q_proj"}), o), ValueError,
                    "group_size 10 does not divide in_features 16");
}

}  // namespace
}  // namespace stunt::train
