// A recipe's train stage in the user's own loop: driven step by step, the session gives the same
// weights, bit for bit, as the Trainer running the same recipe, data order and optimizer; two
// ranks with half the batch each give one process's weights; SparseML's stages share one epoch
// count; its output is the compressed-tensors checkpoint; misuse and recipes it cannot run are
// refused.
#include "stunt/recipe/session.h"

#include <ATen/ATen.h>
#include <torch/nn/functional/loss.h>
#include <torch/optim/adamw.h>
#include <torch/optim/sgd.h>
#include <torch/serialize.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include <nlohmann/json.hpp>

#include "stunt/core/error.h"
#include "stunt/io/safetensors.h"
#include "stunt/model/module_model.h"
#include "stunt/prune/gradual_schedule.h"
#include "stunt/recipe/registry.h"
#include "stunt/train/fused_adamw.h"
#include "stunt/train/trainer.h"
#include "test_util.h"
#include "train/run_ranks.h"

namespace stunt::recipe {
namespace {

struct MlpImpl : torch::nn::Module {
  MlpImpl()
      : fc1(register_module("fc1", stunt::nn::Linear(16, 32))),
        fc2(register_module("fc2", stunt::nn::Linear(32, 32))),
        head(register_module("head", stunt::nn::Linear(32, 4))) {}
  at::Tensor forward(const at::Tensor& x) {
    return head->forward(fc2->forward(fc1->forward(x).relu()).relu());
  }
  stunt::nn::Linear fc1, fc2, head;
};
TORCH_MODULE(Mlp);

constexpr const char* kRecipe = R"(
train_stage:
  train_modifiers:
    GMPruningModifier:
      targets: ['re:fc.*']
      init_sparsity: 0.1
      final_sparsity: 0.6
      start: 0
      end: 2
      update: 0.5
    QuantizationModifier:
      start: 0
      ignore: [head]
      scheme: W8A8
)";

constexpr int64_t kExamples = 32, kBatch = 8, kSteps = kExamples / kBatch;

/// Regression data for the MLP: x [32, 16], y [32, 4].
struct Data : train::TrainingData {
  Data() {
    at::manual_seed(7);
    x = at::randn({kExamples, 16});
    y = at::randn({kExamples, 4});
  }
  int64_t size() const override { return kExamples; }
  train::TrainingBatch batch(const std::vector<int64_t>& examples) const override {
    const at::Tensor index = at::tensor(examples, at::kLong);
    train::TrainingBatch b;
    b.inputs.inputs = {x.index_select(0, index)};
    b.labels = y.index_select(0, index);
    return b;
  }
  std::string fingerprint() const override { return "mlp-data"; }
  at::Tensor x, y;
};

Mlp make_mlp() {
  torch::manual_seed(3);
  return Mlp();
}

Recipe recipe(const char* text = kRecipe) { return parse_recipe(text, "session.yaml"); }

TEST(CompressionSession, EqualsTheTrainerRunningTheSameRecipe) {
  const Data data;
  constexpr double kRate = 1e-2;
  constexpr int64_t kEpochs = 3;
  // The Trainer, as `compress` runs a train stage.
  Mlp reference = make_mlp();
  {
    model::ModuleModel model(
        reference, [&](const model::Batch& b) { return reference->forward(b.inputs.at(0)); });
    Recipe r = recipe();
    validate_recipe(r, ModifierRegistry::builtin());
    State state;
    state.model = &model;
    std::vector<std::unique_ptr<TrainingModifier>> modifiers;
    for (const ModifierSpec& spec : r.stages.front().modifiers) {
      modifiers.push_back(make_training_modifier(spec, r.syntax));
      modifiers.back()->resolve(state);
    }
    train::TrainerOptions options;
    options.batch_size = kBatch;
    options.epochs = kEpochs;
    options.learning_rate.peak = kRate;
    options.log_every = 0;
    train::Trainer trainer(
        model, data,
        [](model::Model& m, const train::TrainingBatch& b) {
          return torch::nn::functional::mse_loss(m.forward_with_grad(b.inputs).logits, b.labels);
        },
        options);
    for (auto& m : modifiers) {
      for (train::TrainingCallbacks* cb : m->callbacks()) trainer.add_callbacks(*cb);
    }
    trainer.run();
    c10::NoGradGuard no_grad;
    for (auto& m : modifiers) m->finish(state);
  }

  // The user's loop with a session.
  Mlp net = make_mlp();
  model::ModuleModel model(net);
  CompressionSession session(model, recipe(), {.steps_per_epoch = kSteps});
  EXPECT_EQ(session.epochs(), 2.0);  // the schedule's end
  EXPECT_TRUE(session.parameters().empty());
  // The optimizer the Trainer uses (equal to torch::optim::AdamW up to rounding).
  train::FusedAdamW optimizer(net->parameters(), torch::optim::AdamWOptions(kRate).weight_decay(0));
  for (int64_t epoch = 0; epoch < kEpochs; ++epoch) {
    const std::vector<int64_t> order = train::epoch_order(kExamples, 0, epoch);
    for (int64_t s = 0; s < kSteps; ++s) {
      const train::TrainingBatch b = data.batch(
          std::vector<int64_t>(order.begin() + s * kBatch, order.begin() + (s + 1) * kBatch));
      session.batch_start();
      optimizer.zero_grad();
      at::Tensor loss =
          torch::nn::functional::mse_loss(net->forward(b.inputs.inputs.at(0)), b.labels);
      session.loss(loss).backward();
      session.step(optimizer);
      // The sparsity after every step is the schedule's at its last update (every 0.5 epoch,
      // cubic by default).
      prune::GradualSchedule schedule;
      schedule.init_sparsity = 0.1;
      schedule.final_sparsity = 0.6;
      schedule.start_epoch = 0;
      schedule.end_epoch = 2;
      schedule.update_frequency = 0.5;
      const double last_update = std::min(2.0, std::floor(session.epoch() / 0.5) * 0.5);
      const double expected = schedule.sparsity_at(last_update);
      EXPECT_NEAR(session.metrics().at("sparsity"), expected, 1e-12) << "step " << session.steps();
    }
  }
  EXPECT_EQ(session.steps(), kEpochs * kSteps);
  State& state = session.finalize();
  for (const char* name : {"fc1", "fc2", "head"}) {
    const at::Tensor got = model.layer(name).weight;
    const at::Tensor want = reference->named_parameters()[std::string(name) + ".weight"];
    EXPECT_TRUE(at::equal(got, want))
        << name << " differs by " << (got - want).abs().max().item<double>();
  }
  EXPECT_NE(state.quantization.find("fc1"), nullptr);
  EXPECT_EQ(state.quantization.find("head"), nullptr);
  EXPECT_EQ((net->fc2->weight == 0).sum().item<int64_t>(), std::llround(0.6 * 32 * 32));

  // The output: compressed-tensors' int-quantized layout, config with quantization_config.
  test::TempDir dir;
  session.save(dir / "out");
  auto file = io::SafetensorsFile::open(dir / "out" / "model.safetensors");
  const at::Tensor q = file->tensor("fc1.weight");
  EXPECT_EQ(q.scalar_type(), at::kChar);
  EXPECT_TRUE(at::equal(q.to(at::kFloat) * file->tensor("fc1.weight_scale"), net->fc1->weight));
  EXPECT_EQ(file->tensor("head.weight").scalar_type(), at::kFloat);
  const auto config = nlohmann::json::parse(test::read_text(dir / "out" / "config.json"));
  EXPECT_EQ(config["quantization_config"]["format"], "int-quantized");
  EXPECT_EQ(config["quantization_config"]["ignore"], nlohmann::json::array({"head"}));
}

/// Trains `net` through a session for kEpochs epochs of global batches of kBatch, of which this
/// process takes the `rank`-th of `world` equal slices; returns the session.
std::unique_ptr<CompressionSession> train_slices(Mlp& net, model::ModuleModel& model,
                                                 const Data& data, SessionOptions options, int rank,
                                                 int world) {
  constexpr int64_t kEpochs = 3;
  auto session = std::make_unique<CompressionSession>(model, recipe(), std::move(options));
  torch::optim::AdamW optimizer(net->parameters(), torch::optim::AdamWOptions(1e-2));
  const int64_t slice = kBatch / world;
  for (int64_t epoch = 0; epoch < kEpochs; ++epoch) {
    const std::vector<int64_t> order = train::epoch_order(kExamples, 0, epoch);
    for (int64_t s = 0; s < kSteps; ++s) {
      const auto first = order.begin() + s * kBatch + rank * slice;
      const train::TrainingBatch b = data.batch(std::vector<int64_t>(first, first + slice));
      session->batch_start();
      optimizer.zero_grad();
      at::Tensor loss =
          torch::nn::functional::mse_loss(net->forward(b.inputs.inputs.at(0)), b.labels);
      session->loss(loss).backward();
      session->step(optimizer);
    }
  }
  return session;
}

TEST(CompressionSession, TwoRanksEqualOneProcessWithTheSameGlobalBatch) {
  const Data data;
  Mlp single = make_mlp();
  model::ModuleModel single_model(single);
  train_slices(single, single_model, data, {.steps_per_epoch = kSteps}, 0, 1)->finalize();

  test::TempDir dir;
  std::vector<std::vector<at::Tensor>> weights(2);
  // Built here, not in the rank threads, which would race on the global generator. Rank 1
  // starts from other weights: the session starts it from rank 0's.
  std::vector<Mlp> nets = {make_mlp(), nullptr};
  torch::manual_seed(103);
  nets[1] = Mlp();
  test::run_ranks(2, [&](train::ProcessGroup& group) {
    const int rank = group.rank();
    Mlp& net = nets[static_cast<size_t>(rank)];
    model::ModuleModel model(net);
    SessionOptions options{.steps_per_epoch = kSteps};
    options.process_group = std::shared_ptr<train::ProcessGroup>(&group, [](auto*) {});
    auto session = train_slices(net, model, data, options, rank, 2);
    session->save_state(dir / "state");
    session->finalize();
    session->save(dir / "out");
    for (const auto& p : net->parameters()) weights[rank].push_back(p.detach().clone());
  });
  const std::vector<at::Tensor> want = single->parameters();
  ASSERT_EQ(weights[0].size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_TRUE(at::equal(weights[0][i], weights[1][i])) << "tensor " << i << " differs by rank";
    EXPECT_TRUE(at::allclose(weights[0][i], want[i], 1e-5, 1e-6))
        << "tensor " << i << ": largest difference "
        << (weights[0][i] - want[i]).abs().max().item<double>();
  }
  EXPECT_EQ((weights[0][2] == 0).sum().item<int64_t>(), std::llround(0.6 * 32 * 32));  // fc2
  // Rank 0 wrote each folder once (rank 1 writing too would have raced on the same names).
  EXPECT_TRUE(std::filesystem::is_regular_file(dir / "out" / "model.safetensors"));
  EXPECT_TRUE(std::filesystem::is_regular_file(dir / "state" / "session.json"));
}

// GMP lets its masks go at epoch 1 (leave_enabled: false); the second stage's constant pruning
// holds the zeros the weights have then, from epoch 1 to 2.5 of the same run.
constexpr const char* kStagedSparseml = R"(
prune_stage:
  prune_modifiers:
    - !GMPruningModifier
      params: ['re:fc.*']
      init_sparsity: 0.0
      final_sparsity: 0.5
      start_epoch: 0
      end_epoch: 1
      update_frequency: 0.5
      leave_enabled: false
hold_stage:
  hold_modifiers:
    - !EpochRangeModifier
      start_epoch: 0
      end_epoch: 3
    - !ConstantPruningModifier
      params: ['re:fc.*']
      start_epoch: 1
      end_epoch: 2.5
)";

TEST(CompressionSession, SparsemlStagesShareOneEpochCount) {
  Mlp net = make_mlp();
  model::ModuleModel model(net);
  CompressionSession session(model, recipe(kStagedSparseml), {.steps_per_epoch = kSteps});
  EXPECT_EQ(session.epochs(), 3.0);  // the second stage's EpochRangeModifier
  torch::optim::SGD optimizer(net->parameters(), torch::optim::SGDOptions(0.1));
  const Data data;
  const train::TrainingBatch b = data.batch({0, 1, 2, 3, 4, 5, 6, 7});
  const int64_t half = 32 * 16 / 2;
  while (session.epoch() < session.epochs()) {
    session.batch_start();
    optimizer.zero_grad();
    session.loss(torch::nn::functional::mse_loss(net->forward(b.inputs.inputs.at(0)), b.labels))
        .backward();
    session.step(optimizer);
    const double epoch = session.epoch();
    const int64_t zeros = (net->fc1->weight == 0).sum().item<int64_t>();
    if (epoch >= 1 - 1e-9 && epoch <= 2.5 + 1e-9) {
      EXPECT_EQ(zeros, half) << "held at epoch " << epoch;
    } else if (epoch > 2.5) {
      EXPECT_LT(zeros, half) << "released at epoch " << epoch;
    }
  }
  EXPECT_EQ(session.steps(), 3 * kSteps);
}

TEST(CompressionSession, DistilsFromATeacherItIsGiven) {
  Mlp net = make_mlp();
  torch::manual_seed(11);
  Mlp teacher_net;
  model::ModuleModel model(net);
  model::ModuleModel teacher(
      teacher_net, [&](const model::Batch& b) { return teacher_net->forward(b.inputs.at(0)); });
  const char* distill = R"(
train_stage:
  train_modifiers:
    - !DistillationModifier
      hardness: 1.0
      temperature: 2.0
)";
  EXPECT_THROW(CompressionSession(model, recipe(distill), {.steps_per_epoch = kSteps}),
               RecipeError);  // no teacher
  SessionOptions options{.steps_per_epoch = kSteps};
  options.teacher = &teacher;
  CompressionSession session(model, recipe(distill), options);
  const Data data;
  const train::TrainingBatch b = data.batch({0, 1, 2, 3, 4, 5, 6, 7});
  session.batch_start();
  const at::Tensor student = net->forward(b.inputs.inputs.at(0));
  const at::Tensor task = torch::nn::functional::mse_loss(student, b.labels);
  EXPECT_THROW(session.loss(task), LifecycleError);  // distillation needs the batch and output
  model::Output output;
  output.logits = student;
  const at::Tensor loss = session.loss(task, b, output);
  // hardness 1: KL(softmax(t/T) ‖ softmax(s/T)) · T² alone, averaged over the rows.
  at::Tensor t = at::log_softmax(teacher_net->forward(b.inputs.inputs.at(0)).detach() / 2.0, -1);
  at::Tensor s = at::log_softmax(student / 2.0, -1);
  const double expected = ((t.exp() * (t - s)).sum(-1).mean() * 4.0).item<double>();
  EXPECT_NEAR(loss.item<double>(), expected, 1e-6);
  EXPECT_TRUE(loss.requires_grad());
}

TEST(CompressionSession, LearnedScalesAreParametersForTheOptimizer) {
  Mlp net = make_mlp();
  model::ModuleModel model(net);
  CompressionSession session(model, recipe(R"(
qat_stage:
  run_type: train
  qat_modifiers:
    QuantizationModifier:
      targets: [Linear]
      learnable_scales: true
      config_groups:
        group_0:
          targets: [Linear]
          weights: {num_bits: 4, type: int, symmetric: true, strategy: group, group_size: 8}
)"),
                             {.steps_per_epoch = 4});
  ASSERT_EQ(session.named_parameters().size(), 3u);
  EXPECT_EQ(session.named_parameters()[0].first, "fc1.weight_log_scale");
  EXPECT_TRUE(session.parameters()[0].requires_grad());
}

constexpr const char* kLearnedScalesWithPruning = R"(
train_stage:
  run_type: train
  train_modifiers:
    GMPruningModifier:
      targets: ['re:fc.*']
      init_sparsity: 0.1
      final_sparsity: 0.5
      start: 0
      end: 2
      update: 0.25
    QuantizationModifier:
      targets: [Linear]
      ignore: [head]
      learnable_scales: true
      config_groups:
        group_0:
          targets: [Linear]
          weights: {num_bits: 4, type: int, symmetric: false, strategy: group, group_size: 8}
          input_activations: {num_bits: 8, type: int, symmetric: true, strategy: tensor,
                              dynamic: false}
)";

/// The user's loop from optimizer step `from` to `to` (exclusive), as a resumed program runs it.
void train_steps(Mlp& net, CompressionSession& session, torch::optim::Optimizer& optimizer,
                 const Data& data, int64_t from, int64_t to) {
  for (int64_t step = from; step < to; ++step) {
    const std::vector<int64_t> order = train::epoch_order(kExamples, 0, step / kSteps);
    const int64_t s = step % kSteps;
    const train::TrainingBatch b = data.batch(
        std::vector<int64_t>(order.begin() + s * kBatch, order.begin() + (s + 1) * kBatch));
    session.batch_start();
    optimizer.zero_grad();
    at::Tensor loss =
        torch::nn::functional::mse_loss(net->forward(b.inputs.inputs.at(0)), b.labels);
    session.loss(loss).backward();
    session.step(optimizer);
  }
}

TEST(CompressionSession, ResumesALoopExactlyFromItsSavedState) {
  const Data data;
  const SessionOptions options{.steps_per_epoch = kSteps};
  auto make_optimizer = [](Mlp& net, const CompressionSession& session) {
    std::vector<at::Tensor> parameters = net->parameters();
    for (const at::Tensor& p : session.parameters()) parameters.push_back(p);
    return torch::optim::AdamW(parameters, torch::optim::AdamWOptions(1e-2).weight_decay(0));
  };
  Mlp straight = make_mlp();
  model::ModuleModel straight_model(straight);
  CompressionSession straight_session(straight_model, recipe(kLearnedScalesWithPruning), options);
  torch::optim::AdamW straight_optimizer = make_optimizer(straight, straight_session);
  train_steps(straight, straight_session, straight_optimizer, data, 0, 11);

  test::TempDir dir;
  {
    Mlp killed = make_mlp();
    model::ModuleModel killed_model(killed);
    CompressionSession killed_session(killed_model, recipe(kLearnedScalesWithPruning), options);
    torch::optim::AdamW killed_optimizer = make_optimizer(killed, killed_session);
    train_steps(killed, killed_session, killed_optimizer, data, 0, 5);
    torch::save(killed, (dir / "net.pt").string());
    torch::save(killed_optimizer, (dir / "optimizer.pt").string());
    killed_session.save_state(dir / "session");
  }
  Mlp resumed = make_mlp();
  torch::load(resumed, (dir / "net.pt").string());
  model::ModuleModel resumed_model(resumed);
  CompressionSession resumed_session(resumed_model, recipe(kLearnedScalesWithPruning), options);
  torch::optim::AdamW resumed_optimizer = make_optimizer(resumed, resumed_session);
  torch::load(resumed_optimizer, (dir / "optimizer.pt").string());
  resumed_session.load_state(dir / "session");
  EXPECT_EQ(resumed_session.steps(), 5);
  train_steps(resumed, resumed_session, resumed_optimizer, data, 5, 11);

  for (const auto& item : straight->named_parameters()) {
    EXPECT_TRUE(at::equal(item.value(), resumed->named_parameters()[item.key()])) << item.key();
  }
  ASSERT_EQ(straight_session.parameters().size(), resumed_session.parameters().size());
  for (size_t i = 0; i < straight_session.parameters().size(); ++i) {
    EXPECT_TRUE(at::equal(straight_session.parameters()[i], resumed_session.parameters()[i]))
        << straight_session.named_parameters()[i].first;
  }
  EXPECT_EQ(straight_session.metrics(), resumed_session.metrics());

  // Another recipe's state is refused; so is a restore after the start.
  Mlp other = make_mlp();
  model::ModuleModel other_model(other);
  CompressionSession other_session(other_model, recipe(), options);
  EXPECT_THROW(other_session.load_state(dir / "session"), ValueError);
  EXPECT_THROW(resumed_session.load_state(dir / "session"), LifecycleError);
}

TEST(CompressionSession, RefusesWhatItCannotRunAndCallsOutOfOrder) {
  Mlp net = make_mlp();
  model::ModuleModel model(net);
  try {
    CompressionSession session(model, recipe(R"(
quant_stage:
  quant_modifiers:
    GPTQModifier: {scheme: W4A16, targets: [Linear]}
)"),
                               {.steps_per_epoch = 4});
    FAIL() << "GPTQ accepted in a training session";
  } catch (const NotImplementedError& e) {
    EXPECT_NE(std::string(e.what()).find("session.yaml"), std::string::npos) << e.what();
  }
  EXPECT_THROW(CompressionSession(model, recipe(), {.steps_per_epoch = 0}), ValueError);

  CompressionSession session(model, recipe(), {.steps_per_epoch = 4});
  EXPECT_THROW(session.optimizer_post_step(), LifecycleError);
  EXPECT_THROW(session.save("unused"), LifecycleError);
  session.batch_start();
  EXPECT_THROW(session.batch_start(), LifecycleError);
  EXPECT_THROW(session.finalize(), LifecycleError);
  session.optimizer_pre_step();
  session.optimizer_post_step();
  session.finalize();
  EXPECT_THROW(session.finalize(), LifecycleError);
  EXPECT_THROW(session.batch_start(), LifecycleError);
}

TEST(CompressionSession, RefusesQuantizationAwareTrainingOfPlainTorchLayers) {
  auto net = std::make_shared<torch::nn::Module>();
  net->register_module("fc", torch::nn::Linear(8, 8));
  model::ModuleModel model(net);
  try {
    CompressionSession session(model, recipe(), {.steps_per_epoch = 4});
    FAIL() << "fake quantization of a plain torch::nn::Linear was accepted";
  } catch (const ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("stunt::nn::Linear"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace stunt::recipe
