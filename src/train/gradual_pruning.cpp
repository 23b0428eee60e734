#include "stunt/train/gradual_pruning.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <limits>

#include "stunt/core/error.h"

namespace stunt::train {

GradualPruning::GradualPruning(std::vector<model::Layer*> layers, GradualPruningOptions options)
    : layers_(std::move(layers)), options_(std::move(options)) {
  const std::string& where = options_.name;
  STUNT_CHECK_AS(ValueError, !layers_.empty(), where, ": no layer to prune");
  if (options_.score != PruningScore::ExistingZeros) {
    options_.schedule.validate(where);
    if (!options_.structure.unstructured()) {
      STUNT_CHECK_AS(ValueError, !options_.global, where, ": global_sparsity needs unstructured ",
                     "masks; ", options_.structure.to_string(),
                     " already fixes the sparsity of every group");
      STUNT_CHECK_AS(
          ValueError, options_.schedule.final_sparsity <= options_.structure.sparsity() + 1e-9,
          where, ": final_sparsity ", options_.schedule.final_sparsity,
          " exceeds what mask_structure ", options_.structure.to_string(), " allows (",
          options_.structure.sparsity(), "); lower it to ", options_.structure.sparsity());
    }
    for (const model::Layer* layer : layers_) {
      prune::check_prunable(options_.structure, options_.schedule.final_sparsity,
                            layer->in_features(), layer->name, where);
    }
  }
  movement_.resize(layers_.size());
}

GradualPruning::~GradualPruning() = default;

at::Tensor GradualPruning::scores(size_t i) const {
  if (options_.score == PruningScore::Movement) {
    const at::Tensor& s = movement_[i].scores();
    return s.defined() ? s
                       : at::zeros(layers_[i]->weight.sizes(),
                                   layers_[i]->weight.options().dtype(at::kFloat));
  }
  return layers_[i]->weight.detach().abs().to(at::kFloat);
}

std::vector<at::Tensor> GradualPruning::choose(double sparsity) const {
  std::vector<at::Tensor> pruned(layers_.size());
  if (options_.global) {
    std::vector<at::Tensor> flat;
    for (size_t i = 0; i < layers_.size(); ++i) flat.push_back(scores(i).flatten());
    const at::Tensor all = prune::lowest_scores_pruned(at::cat(flat), sparsity);
    int64_t offset = 0;
    for (size_t i = 0; i < layers_.size(); ++i) {
      const int64_t n = layers_[i]->weight.numel();
      pruned[i] = all.narrow(0, offset, n).reshape(layers_[i]->weight.sizes());
      offset += n;
    }
    return pruned;
  }
  for (size_t i = 0; i < layers_.size(); ++i) {
    at::Tensor s = scores(i);
    if (!options_.structure.unstructured()) {
      // Only the N lowest of every M may go; among those, the lowest overall.
      const at::Tensor eligible = prune::n_of_m_lowest(s, options_.structure);
      s = at::where(eligible, s, std::numeric_limits<float>::infinity());
    }
    pruned[i] = prune::lowest_scores_pruned(s, sparsity);
  }
  return pruned;
}

void GradualPruning::update(double epoch) {
  applied_ = options_.schedule.sparsity_at(epoch);
  const std::vector<at::Tensor> pruned = choose(applied_);
  const bool first = masks_ == nullptr;
  if (first) masks_ = std::make_unique<prune::ParameterMasks>();
  for (size_t i = 0; i < layers_.size(); ++i) {
    if (first) {
      masks_->add(layers_[i]->name, layers_[i]->weight, pruned[i]);
    } else {
      masks_->update(layers_[i]->name, pruned[i]);
    }
  }
  last_update_ = epoch;
}

void GradualPruning::on_train_start(const StepInfo& info) {
  if (!restored_.empty()) {
    masks_ = std::make_unique<prune::ParameterMasks>();
    for (size_t i = 0; i < layers_.size(); ++i) {
      masks_->add(layers_[i]->name, layers_[i]->weight, restored_[i]);
    }
    restored_.clear();
    return;
  }
  if (options_.score == PruningScore::ExistingZeros) {
    hold_existing_zeros(info.epoch);
    return;
  }
  if (options_.schedule.update_due(info.epoch, last_update_)) update(info.epoch);
}

void GradualPruning::on_batch_start(const StepInfo& info) {
  if (options_.score == PruningScore::ExistingZeros) hold_existing_zeros(info.epoch);
}

void GradualPruning::hold_existing_zeros(double epoch) {
  const bool ended = options_.hold_until && epoch >= *options_.hold_until - 1e-9;
  // last_update_ is the epoch the zeros were taken: once taken, they are never taken again
  // (after end_epoch the weights may fill them, as SparseML lets them).
  if (!last_update_ && !ended && epoch >= options_.hold_from - 1e-9) {
    masks_ = std::make_unique<prune::ParameterMasks>();
    int64_t zeros = 0, total = 0;
    for (model::Layer* layer : layers_) {
      masks_->add_existing_zeros(layer->name, layer->weight);
      zeros += masks_->pruned(layer->name).sum().item<int64_t>();
      total += layer->weight.numel();
    }
    applied_ = total > 0 ? static_cast<double>(zeros) / static_cast<double>(total) : 0.0;
    last_update_ = epoch;
  }
  if (ended && masks_) {
    masks_->apply();
    masks_.reset();
  }
}

void GradualPruning::on_optimizer_pre_step(const StepInfo& info) {
  if (options_.score != PruningScore::Movement) return;
  for (size_t i = 0; i < layers_.size(); ++i) {
    const at::Tensor& w = layers_[i]->weight;
    if (w.grad().defined()) movement_[i].accumulate(w, w.grad());
  }
}

void GradualPruning::on_optimizer_post_step(const StepInfo& info) {
  // Momentum and weight decay move pruned weights off zero; put them back.
  if (masks_) masks_->apply();
  if (options_.score == PruningScore::ExistingZeros) return;
  if (options_.schedule.update_due(info.epoch, last_update_)) update(info.epoch);
  const bool ended = last_update_ && *last_update_ >= options_.schedule.end_epoch - 1e-9;
  // The weights keep their zeros; only the holding stops.
  if (ended && !options_.leave_enabled) masks_.reset();
}

void GradualPruning::on_train_end(const StepInfo& info) {
  if (masks_) masks_->apply();
}

void GradualPruning::save_state(CallbackState& state) const {
  state.json["last_update"] = last_update_ ? nlohmann::ordered_json(*last_update_) : nullptr;
  state.json["applied_sparsity"] = applied_;
  state.json["holding"] = masks_ != nullptr;
  for (size_t i = 0; i < layers_.size(); ++i) {
    const std::string& name = layers_[i]->name;
    if (masks_) state.tensors[name + ".pruned"] = masks_->pruned(name).to(at::kByte);
    if (movement_[i].scores().defined()) state.tensors[name + ".movement"] = movement_[i].scores();
  }
}

void GradualPruning::load_state(const CallbackState& state) {
  const auto& last = state.json.at("last_update");
  last_update_ = last.is_null() ? std::nullopt : std::optional<double>(last.get<double>());
  applied_ = state.json.at("applied_sparsity").get<double>();
  restored_.clear();
  for (size_t i = 0; i < layers_.size(); ++i) {
    const std::string& name = layers_[i]->name;
    if (state.json.at("holding").get<bool>()) {
      const auto it = state.tensors.find(name + ".pruned");
      STUNT_CHECK_AS(ValueError, it != state.tensors.end(), options_.name,
                     ": the checkpoint holds no mask for ", name,
                     "; it was written by another recipe");
      restored_.push_back(it->second.to(at::kBool));
    }
    const auto scores = state.tensors.find(name + ".movement");
    if (scores != state.tensors.end()) movement_[i].restore(scores->second);
  }
}

void GradualPruning::metrics(std::map<std::string, double>& out) const {
  // Several pruning methods in one run: the highest sparsity any of them holds.
  double& sparsity = out["sparsity"];
  sparsity = std::max(sparsity, applied_);
}

}  // namespace stunt::train
