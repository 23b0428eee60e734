// A user's own LibTorch training program, compressed during training by a recipe file.
//
// A small CNN, written with Stunt's drop-in layers (stunt::nn::Conv2d, stunt::nn::Linear),
// learns to classify generated 8x8 images (four noisy patterns). The recipe prunes gradually to 75%
// and trains the linear layers quantized (W8A8 from epoch 2); the learning rate and the number of
// epochs come from the recipe too. At the end the program checks what it asked for (sparsity of
// every pruned layer, weights on their int8 grid) and saves the model as a compressed-tensors
// checkpoint.
//
//   train_qat_gmp recipe.yaml out/
//
// Exit status 0 when every check holds, 1 otherwise.
#include <stunt/stunt.h>

#include <torch/torch.h>

#include <cmath>
#include <cstdio>
#include <filesystem>

namespace {

struct CnnImpl : torch::nn::Module {
  CnnImpl()
      : conv1(register_module("conv1",
                              stunt::nn::Conv2d(torch::nn::Conv2dOptions(1, 8, 3).padding(1)))),
        conv2(register_module(
            "conv2", stunt::nn::Conv2d(torch::nn::Conv2dOptions(8, 16, 3).stride(2).padding(1)))),
        fc1(register_module("fc1", stunt::nn::Linear(16 * 4 * 4, 64))),
        fc2(register_module("fc2", stunt::nn::Linear(64, 64))),
        head(register_module("head", stunt::nn::Linear(64, 4))) {}

  torch::Tensor forward(const torch::Tensor& x) {
    torch::Tensor h = torch::relu(conv1->forward(x));
    h = torch::relu(conv2->forward(h)).flatten(1);
    h = torch::relu(fc1->forward(h));
    h = torch::relu(fc2->forward(h));
    return head->forward(h);
  }

  stunt::nn::Conv2d conv1, conv2;
  stunt::nn::Linear fc1, fc2, head;
};
TORCH_MODULE(Cnn);

double accuracy(Cnn& net, const torch::Tensor& x, const torch::Tensor& y) {
  torch::NoGradGuard no_grad;
  return net->forward(x).argmax(1).eq(y).to(torch::kFloat).mean().item<double>();
}

bool check(bool ok, const char* what) {
  std::printf("%s %s\n", ok ? "ok  " : "FAIL", what);
  return ok;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s RECIPE OUT_DIR\n", argv[0]);
    return 2;
  }
  torch::set_num_threads(1);
  try {
    // Generated data: four classes, each a fixed random 8x8 pattern under unit noise (the
    // best possible accuracy is about 88%).
    torch::manual_seed(0);
    const torch::Tensor patterns = 0.3 * torch::randn({4, 1, 8, 8});
    const torch::Tensor train_y = torch::randint(4, {2048}, torch::kLong);
    const torch::Tensor test_y = torch::randint(4, {512}, torch::kLong);
    const torch::Tensor train_x = patterns.index_select(0, train_y) + torch::randn({2048, 1, 8, 8});
    const torch::Tensor test_x = patterns.index_select(0, test_y) + torch::randn({512, 1, 8, 8});
    constexpr int64_t kBatch = 64;
    const int64_t steps_per_epoch = train_x.size(0) / kBatch;

    torch::manual_seed(1);
    Cnn net;
    stunt::model::ModuleModel model(net);
    stunt::recipe::SessionOptions options;
    options.steps_per_epoch = steps_per_epoch;
    stunt::recipe::CompressionSession session(model, stunt::recipe::load_recipe(argv[1]), options);

    std::vector<torch::Tensor> parameters = net->parameters();
    for (const torch::Tensor& p : session.parameters()) parameters.push_back(p);
    torch::optim::AdamW optimizer(parameters, torch::optim::AdamWOptions(1e-3).weight_decay(0));

    const auto epochs = static_cast<int64_t>(std::ceil(session.epochs()));
    for (int64_t epoch = 0; epoch < epochs; ++epoch) {
      const torch::Tensor order = torch::randperm(train_x.size(0));
      double loss_sum = 0;
      for (int64_t s = 0; s < steps_per_epoch; ++s) {
        const torch::Tensor index = order.slice(0, s * kBatch, (s + 1) * kBatch);
        session.batch_start();
        optimizer.zero_grad();
        torch::Tensor loss = session.loss(torch::nn::functional::cross_entropy(
            net->forward(train_x.index_select(0, index)), train_y.index_select(0, index)));
        loss.backward();
        session.step(optimizer);  // the recipe's learning rate, masks, observers
        loss_sum += loss.item<double>();
      }
      const auto metrics = session.metrics();
      std::printf("epoch %lld: loss %.4f, lr %.2e, sparsity %.3f, held-out accuracy %.3f\n",
                  static_cast<long long>(epoch + 1), loss_sum / steps_per_epoch,
                  optimizer.param_groups()[0].options().get_lr(),
                  metrics.count("sparsity") ? metrics.at("sparsity") : 0.0,
                  accuracy(net, test_x, test_y));
    }
    stunt::recipe::State& state = session.finalize();
    // After finalize the network computes what the checkpoint holds.
    const double final_accuracy = accuracy(net, test_x, test_y);
    std::printf("compressed model: held-out accuracy %.3f (chance 0.25)\n", final_accuracy);

    bool ok = true;
    for (const char* name : {"conv2", "fc1", "fc2"}) {
      const torch::Tensor w = model.layer(name).weight;
      const double sparsity = w.eq(0).to(torch::kDouble).mean().item<double>();
      std::printf("     %s: sparsity %.4f\n", name, sparsity);
      ok &=
          check(std::abs(sparsity - 0.75) < 1.0 / static_cast<double>(w.numel()), "pruned to 75%");
    }
    ok &= check(model.layer("conv1").weight.eq(0).sum().item<int64_t>() == 0,
                "conv1 (not in the recipe) is dense");
    for (const char* name : {"fc1", "fc2"}) {
      const stunt::quant::LayerQuantization* record = state.quantization.find(name);
      ok &= check(record != nullptr, "fc1 and fc2 are quantized");
      if (record == nullptr) continue;
      const torch::Tensor q = model.layer(name).weight / record->weight.scale;
      ok &= check(torch::allclose(q, q.round(), 0, 1e-3) && q.abs().max().item<double>() <= 128,
                  "their weights lie on the int8 grid of their trained scales");
    }
    ok &= check(state.quantization.find("head") == nullptr, "head (ignored) is not quantized");
    ok &= check(final_accuracy > 0.5, "the compressed model learned the task");

    session.save(argv[2]);
    std::printf("saved %s\n", argv[2]);
    return ok ? 0 : 1;
  } catch (const stunt::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
