// How much each head or FFN channel matters, measured on calibration data (structure.h).
#include <ATen/ATen.h>
#include <torch/csrc/autograd/grad_mode.h>

#include <map>

#include "stunt/core/error.h"
#include "stunt/core/logging.h"
#include "stunt/core/progress.h"
#include "stunt/prune/structure.h"

namespace stunt::prune {
namespace {

std::vector<model::Layer*> output_layers(model::HfModel& model,
                                         const std::vector<std::string>& names, int64_t unit,
                                         const std::string& where) {
  std::vector<model::Layer*> layers;
  for (const std::string& name : names) {
    model::Layer& layer = model.layer(name);
    STUNT_CHECK(layer.in_features() % unit == 0, where, ": ", name, " has ", layer.in_features(),
                " inputs, not a multiple of ", unit);
    layers.push_back(&layer);
  }
  return layers;
}

/// Σ_unit ‖x_c‖ · ‖W[:, c]‖: a unit's output is at most about this large.
std::vector<at::Tensor> activation_importance(model::HfModel& model,
                                              const std::vector<model::Layer*>& layers,
                                              int64_t unit,
                                              const std::vector<model::Batch>& calibration) {
  std::map<const model::Layer*, at::Tensor> squares;
  for (model::Layer* layer : layers) {
    squares[layer] = at::zeros({layer->in_features()}, at::kDouble);
  }
  {
    model::InputCapture capture(model, layers, [&](const model::Layer& layer, const at::Tensor& x) {
      squares.at(&layer).add_(x.reshape({-1, x.size(-1)}).to(at::kDouble).square().sum(0));
    });
    Progress progress("importance (activation norms)", static_cast<int64_t>(calibration.size()));
    for (const model::Batch& batch : calibration) {
      // The blocks hold every output projection: the LM head's forward is not needed.
      model::BlockState state = model.embed(batch);
      for (int b = 0; b < model.num_blocks(); ++b) model.run_block(b, state);
      progress.advance();
    }
  }
  std::vector<at::Tensor> scores;
  for (model::Layer* layer : layers) {
    const at::Tensor column_norms = layer->weight.to(at::kDouble).norm(2, {0});
    scores.push_back((squares.at(layer).sqrt() * column_norms).reshape({-1, unit}).sum(1));
  }
  return scores;
}

/// Next-token cross-entropy of a causal language model, padding ignored.
at::Tensor language_model_loss(const at::Tensor& logits, const model::Batch& batch) {
  const int64_t vocab = logits.size(-1);
  at::Tensor labels = batch.input_ids.narrow(1, 1, batch.input_ids.size(1) - 1).clone();
  if (batch.attention_mask.defined()) {
    labels.masked_fill_(batch.attention_mask.narrow(1, 1, labels.size(1)) == 0, -100);
  }
  const at::Tensor predicted = logits.narrow(1, 0, logits.size(1) - 1).reshape({-1, vocab});
  return at::cross_entropy_loss(predicted, labels.reshape({-1}), {}, at::Reduction::Mean, -100);
}

/// |Σ_unit Σ_i W ∂L/∂W| per batch, summed over batches.
std::vector<at::Tensor> taylor_importance(model::HfModel& model,
                                          const std::vector<model::Layer*>& layers, int64_t unit,
                                          const std::vector<model::Batch>& calibration,
                                          const std::string& where) {
  std::vector<at::Tensor> scores;
  for (model::Layer* layer : layers) {
    scores.push_back(at::zeros({layer->in_features() / unit}, at::kDouble));
    layer->weight.requires_grad_(true);
  }
  try {
    at::AutoGradMode grad(true);
    Progress progress("importance (first-order Taylor)", static_cast<int64_t>(calibration.size()));
    for (const model::Batch& batch : calibration) {
      STUNT_CHECK_AS(ValueError, batch.input_ids.defined() && batch.input_ids.size(1) > 1, where,
                     ": Taylor importance needs token batches of at least 2 tokens");
      model::BlockState state = model.embed(batch);
      for (int b = 0; b < model.num_blocks(); ++b) model.run_block(b, state);
      const model::Output out = model.head(state);
      language_model_loss(out.logits, batch).backward();
      for (size_t i = 0; i < layers.size(); ++i) {
        at::Tensor& grad_w = layers[i]->weight.mutable_grad();
        const at::Tensor contribution =
            (layers[i]->weight.detach().to(at::kDouble) * grad_w.to(at::kDouble)).sum(0);
        scores[i].add_(contribution.reshape({-1, unit}).sum(1).abs());
        grad_w = at::Tensor();
      }
      progress.advance();
    }
  } catch (...) {
    for (model::Layer* layer : layers) layer->weight.requires_grad_(false);
    throw;
  }
  for (model::Layer* layer : layers) {
    layer->weight.mutable_grad() = at::Tensor();
    layer->weight.requires_grad_(false);
  }
  return scores;
}

}  // namespace

std::vector<at::Tensor> unit_importance(model::HfModel& model,
                                        const std::vector<std::string>& layers, int64_t unit,
                                        const std::vector<model::Batch>& calibration,
                                        Importance importance, bool causal_lm,
                                        const std::string& where) {
  STUNT_CHECK_AS(ValueError, !calibration.empty(), where,
                 ": head and channel importance is measured on calibration data; give a dataset "
                 "(compress --dataset FILE)");
  const std::vector<model::Layer*> outputs = output_layers(model, layers, unit, where);
  if (importance == Importance::Activation) {
    c10::NoGradGuard no_grad;
    return activation_importance(model, outputs, unit, calibration);
  }
  STUNT_CHECK_AS(ValueError, causal_lm, where,
                 ": Taylor importance follows the gradient of a "
                 "language-model loss, which ",
                 model.architecture(), " does not compute here; use importance: activation");
  return taylor_importance(model, outputs, unit, calibration, where);
}

}  // namespace stunt::prune
