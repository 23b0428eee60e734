// A user's torch::nn::Module as a Model: layers found by type under their qualified names, the
// drop-ins computing as torch's layers, replacement forwards and input capture reaching the
// drop-ins only, and plain torch layers refused for what needs their forward.
#include "stunt/model/module_model.h"

#include <ATen/ATen.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/normalization.h>

#include <gtest/gtest.h>

#include "stunt/core/error.h"
#include "stunt/io/safetensors.h"
#include "test_util.h"

namespace stunt::model {
namespace {

struct NetImpl : torch::nn::Module {
  NetImpl()
      : conv(register_module(
            "conv", stunt::nn::Conv2d(torch::nn::Conv2dOptions(2, 3, 3).stride(2).padding(1)))),
        fc1(register_module("fc1", stunt::nn::Linear(12, 8))),
        norm(register_module("norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({8})))),
        plain(register_module("plain",
                              torch::nn::Linear(torch::nn::LinearOptions(8, 8).bias(false)))),
        head(register_module("head", torch::nn::Sequential(stunt::nn::Linear(8, 4)))) {}
  at::Tensor forward(const at::Tensor& x) {
    at::Tensor h = conv->forward(x).flatten(1);
    h = norm->forward(fc1->forward(h)).relu();
    return head->forward(plain->forward(h));
  }
  stunt::nn::Conv2d conv;
  stunt::nn::Linear fc1;
  torch::nn::LayerNorm norm;
  torch::nn::Linear plain;
  torch::nn::Sequential head;
};
TORCH_MODULE(Net);

TEST(ModuleModel, FindsLayersByTypeUnderTheirQualifiedNames) {
  torch::manual_seed(0);
  Net net;
  ModuleModel model(net);
  std::vector<std::string> names;
  for (const Layer* l : model.layers()) names.push_back(l->name);
  EXPECT_EQ(names, (std::vector<std::string>{"conv", "fc1", "plain", "head.0"}));
  EXPECT_EQ(model.layer("conv").kind, LayerKind::Conv);
  EXPECT_EQ(model.layer("conv").class_name, "Conv2d");
  EXPECT_TRUE(model.layer("fc1").reachable);
  EXPECT_FALSE(model.layer("plain").reachable);
  EXPECT_FALSE(model.layer("plain").bias.defined());
  // The layers' tensors are the module's parameters, not copies.
  EXPECT_TRUE(model.layer("fc1").weight.is_same(net->fc1->weight));
  EXPECT_TRUE(model.layer("head.0").bias.is_same(net->head[0]->as<torch::nn::LinearImpl>()->bias));
  EXPECT_EQ(model.tensor_names(), (std::vector<std::string>{"norm.bias", "norm.weight"}));
  std::vector<std::string> linear;
  for (const Layer* l : model.match({"Linear"}, {"re:head"})) linear.push_back(l->name);
  EXPECT_EQ(linear, (std::vector<std::string>{"fc1", "plain"}));
}

TEST(ModuleModel, DropInsComputeAsTorchLayersAndReachReplacementForwards) {
  torch::manual_seed(0);
  Net net;
  const at::Tensor x = at::randn({5, 2, 4, 4});
  const at::Tensor before = net->forward(x);
  // The drop-ins against torch's own layers with the same parameters.
  torch::nn::Conv2d conv(torch::nn::Conv2dOptions(2, 3, 3).stride(2).padding(1));
  conv->weight.data().copy_(net->conv->weight);
  conv->bias.data().copy_(net->conv->bias);
  EXPECT_TRUE(at::equal(net->conv->forward(x), conv->forward(x)));
  {
    ModuleModel model(net);
    EXPECT_TRUE(at::equal(net->forward(x), before));
    LayerSwap swap(model.layer("fc1"), [](const at::Tensor& input, const Layer& layer) {
      return at::linear(input, at::zeros_like(layer.weight), layer.bias);
    });
    const at::Tensor h = net->norm->forward(net->fc1->bias.expand({5, 8})).relu();
    EXPECT_TRUE(at::allclose(net->forward(x), net->head->forward(net->plain->forward(h))));
  }
  // Once the model is gone the drop-ins are plain layers again.
  EXPECT_TRUE(at::equal(net->forward(x), before));
}

TEST(ModuleModel, PlainTorchLayersAreRefusedForWhatNeedsTheirForward) {
  Net net;
  ModuleModel model(net);
  try {
    LayerSwap swap(model.layer("plain"), [](const at::Tensor& x, const Layer&) { return x; });
    FAIL() << "a swap on a plain torch::nn::Linear was accepted";
  } catch (const ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("build it as stunt::nn::Linear"), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(InputCapture(model, {&model.layer("plain")}, [](const Layer&, const at::Tensor&) {}),
               ValueError);
  // Without a forward function Stunt cannot run the module itself.
  Batch batch;
  batch.inputs = {at::zeros({1, 2, 4, 4})};
  EXPECT_THROW(model.forward(batch), NotImplementedError);
}

TEST(ModuleModel, ForwardFunctionRunsTheModuleWithInputCapture) {
  torch::manual_seed(0);
  Net net;
  ModuleModel model(net, [&](const Batch& b) { return net->forward(b.inputs.at(0)); });
  const at::Tensor x = at::randn({3, 2, 4, 4});
  const at::Tensor expected = net->forward(x);
  std::vector<std::pair<std::string, at::Tensor>> seen;
  {
    InputCapture capture(
        model, {&model.layer("conv"), &model.layer("head.0")},
        [&](const Layer& l, const at::Tensor& input) { seen.emplace_back(l.name, input.clone()); });
    Batch batch;
    batch.inputs = {x};
    EXPECT_TRUE(at::equal(model.forward(batch).logits, expected));
  }
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].first, "conv");
  EXPECT_TRUE(at::equal(seen[0].second, x));
  EXPECT_EQ(seen[1].first, "head.0");
  EXPECT_EQ(seen[1].second.sizes(), (at::IntArrayRef{3, 8}));
}

TEST(ModuleModel, SavesTheStateDictUnderTheModulesNames) {
  torch::manual_seed(0);
  Net net;
  ModuleModel model(net);
  test::TempDir dir;
  model.save(dir.path());
  auto file = io::SafetensorsFile::open(dir / "model.safetensors");
  for (const auto& item : net->named_parameters()) {
    EXPECT_TRUE(at::equal(file->tensor(item.key()), item.value())) << item.key();
  }
  EXPECT_TRUE(std::filesystem::exists(dir / "config.json"));
}

TEST(ModuleModel, RefusesAModuleWithoutLayersAndASecondModelOverTheSameDropIns) {
  auto empty = std::make_shared<torch::nn::LayerNormImpl>(torch::nn::LayerNormOptions({4}));
  EXPECT_THROW(ModuleModel model(empty), ValueError);
  Net net;
  ModuleModel first(net);
  EXPECT_THROW(ModuleModel second(net), ValueError);
}

}  // namespace
}  // namespace stunt::model
