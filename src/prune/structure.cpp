#include "stunt/prune/structure.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <map>
#include <set>

#include "stunt/core/error.h"
#include "stunt/core/strings.h"

namespace stunt::prune {
namespace {

using TensorList = std::vector<std::pair<std::string, at::Tensor>>;

/// Indices of the rows (or columns) of `units` of `size` each.
at::Tensor unit_indices(const std::vector<int64_t>& units, int64_t size) {
  std::vector<int64_t> out;
  out.reserve(units.size() * size);
  for (int64_t u : units) {
    for (int64_t j = 0; j < size; ++j) out.push_back(u * size + j);
  }
  return at::tensor(out, at::kLong);
}

void slice_tensor(TensorList& tensors, const std::string& name, int64_t dim,
                  const at::Tensor& index) {
  for (auto& [n, t] : tensors) {
    if (n == name) {
      t = t.index_select(dim, index).contiguous();
      return;
    }
  }
  STUNT_ASSERT(false, "no tensor ", name);
}

void check_same_count(const std::vector<size_t>& counts, const char* what,
                      const std::string& where) {
  for (size_t c : counts) {
    STUNT_CHECK_AS(ValueError, c == counts.front(), where, ": every ", what,
                   " must keep the same number (transformers builds all layers from one config), "
                   "got ",
                   counts.front(), " and ", c);
  }
}

}  // namespace

std::unique_ptr<model::HfModel> drop_blocks(const model::HfModel& model, const std::string& stack,
                                            const std::vector<int64_t>& drop,
                                            const std::string& where) {
  const StructureLayout layout = structure_layout(model);
  const BlockStack* chosen = nullptr;
  std::vector<std::string> names;
  for (const BlockStack& s : layout.stacks) {
    names.push_back(s.name.empty() ? "(the model's only stack)" : s.name);
    if (s.name == stack || (stack.empty() && layout.stacks.size() == 1)) chosen = &s;
  }
  STUNT_CHECK_AS(ValueError, chosen != nullptr, where, ": ", model.architecture(),
                 " has no block stack '", stack, "'; its stacks are ", join(names, ", "));
  const size_t stack_index = static_cast<size_t>(chosen - layout.stacks.data());
  std::set<int64_t> dropped;
  for (int64_t i : drop) {
    STUNT_CHECK_AS(ValueError, i >= 0 && i < chosen->count, where, ": layer index ", i,
                   " is out of range; ", chosen->prefix, "* has ", chosen->count, " layers (0 to ",
                   chosen->count - 1, ")");
    dropped.insert(i);
  }
  STUNT_CHECK_AS(ValueError, static_cast<int64_t>(dropped.size()) < chosen->count, where,
                 ": dropping all ", chosen->count, " layers of ", chosen->prefix,
                 "* leaves no model; keep at least one");
  std::map<int64_t, int64_t> renumber;
  for (int64_t i = 0, next = 0; i < chosen->count; ++i) {
    if (!dropped.count(i)) renumber[i] = next++;
  }
  const std::string bias = layout.position_bias[stack_index];
  TensorList out;
  for (auto& [name, tensor] : model.state_dict()) {
    if (name.rfind(chosen->prefix, 0) != 0 || name == bias) {
      out.emplace_back(name, tensor);
      continue;
    }
    const size_t dot = name.find('.', chosen->prefix.size());
    const int64_t index =
        std::stoll(name.substr(chosen->prefix.size(), dot - chosen->prefix.size()));
    auto it = renumber.find(index);
    if (it == renumber.end()) continue;
    out.emplace_back(str(chosen->prefix, it->second, name.substr(dot)), tensor);
  }
  nlohmann::json config = model.config().json();
  const int64_t kept = chosen->count - static_cast<int64_t>(dropped.size());
  // T5's num_decoder_layers defaults to num_layers: both are written once either changes.
  for (const BlockStack& s : layout.stacks) config[s.count_key] = s.count;
  config[chosen->count_key] = kept;
  // Per-layer settings (transformers 5's layer_types) follow their layers.
  if (layout.stacks.size() == 1 && config.contains("layer_types") &&
      config["layer_types"].is_array() &&
      static_cast<int64_t>(config["layer_types"].size()) == chosen->count) {
    nlohmann::json types = nlohmann::json::array();
    for (const auto& [old_index, new_index] : renumber)
      types.push_back(config["layer_types"][old_index]);
    config["layer_types"] = types;
  }
  return model.rebuilt(std::move(config), std::move(out));
}

std::unique_ptr<model::HfModel> keep_heads(const model::HfModel& model,
                                           const std::vector<std::vector<int64_t>>& kept,
                                           const std::string& where) {
  const StructureLayout layout = structure_layout(model);
  STUNT_CHECK_AS(ValueError, layout.heads_refusal.empty(), where, ": ", layout.heads_refusal);
  STUNT_CHECK(kept.size() == layout.attention.size(), where, ": ", kept.size(), " head lists for ",
              layout.attention.size(), " attention modules");
  const int64_t group = layout.heads / layout.kv_heads;
  std::vector<size_t> counts;
  for (const auto& heads : kept) counts.push_back(heads.size());
  check_same_count(counts, "attention module", where);
  const int64_t new_heads = static_cast<int64_t>(kept.front().size());
  STUNT_CHECK_AS(ValueError, new_heads > 0, where,
                 ": pruning every head of a layer leaves no attention; keep at least one head");
  TensorList tensors = model.state_dict();
  int64_t new_kv_heads = layout.kv_heads;
  for (size_t m = 0; m < kept.size(); ++m) {
    const AttentionModule& module = layout.attention[m];
    std::vector<int64_t> kv_kept;
    std::vector<int64_t> per_group(layout.kv_heads, 0);
    for (int64_t h : kept[m]) {
      STUNT_CHECK_AS(ValueError, h >= 0 && h < layout.heads, where, ": head ", h, " of ",
                     module.prefix, " is out of range (", layout.heads, " heads)");
      ++per_group[h / group];
    }
    if (group == 1) {
      kv_kept = kept[m];
    } else {
      for (int64_t g = 0; g < layout.kv_heads; ++g) {
        STUNT_CHECK_AS(ValueError, per_group[g] == per_group[0] && per_group[g] > 0, where, ": ",
                       module.prefix, " keeps ", per_group[g], " query heads of key/value head ", g,
                       " and ", per_group[0],
                       " of key/value head 0; grouped-query attention "
                       "needs the same number (at least one) in every group");
        kv_kept.push_back(g);
      }
    }
    new_kv_heads = static_cast<int64_t>(kv_kept.size());
    const at::Tensor query_index = unit_indices(kept[m], layout.head_dim);
    const at::Tensor kv_index = unit_indices(kv_kept, layout.head_dim);
    for (const SlicedTensor& t : module.tensors) {
      slice_tensor(tensors, t.name, t.dim, t.key_value ? kv_index : query_index);
    }
  }
  // T5: each stack's relative-position bias keeps the columns of the heads its self-attention
  // modules keep, which are one set per stack.
  for (size_t s = 0; s < layout.position_bias.size(); ++s) {
    if (layout.position_bias[s].empty()) continue;
    const std::vector<int64_t>* shared = nullptr;
    for (size_t m = 0; m < kept.size(); ++m) {
      if (layout.attention[m].shared_bias_stack != static_cast<int>(s)) continue;
      if (shared == nullptr) shared = &kept[m];
      STUNT_CHECK_AS(ValueError, kept[m] == *shared, where, ": ", layout.attention[m].prefix,
                     " keeps other heads than the rest of its stack; T5's self-attention heads "
                     "share one relative-position bias per stack, so they are kept together");
    }
    if (shared != nullptr) {
      slice_tensor(tensors, layout.position_bias[s], 1, at::tensor(*shared, at::kLong));
    }
  }
  nlohmann::json config = model.config().json();
  config[layout.heads_key] = new_heads;
  if (!layout.kv_heads_key.empty()) config[layout.kv_heads_key] = new_kv_heads;
  // The head size no longer follows from hidden_size / heads: say it.
  if (!layout.head_dim_key.empty()) config[layout.head_dim_key] = layout.head_dim;
  return model.rebuilt(std::move(config), std::move(tensors));
}

std::unique_ptr<model::HfModel> keep_ffn_channels(const model::HfModel& model,
                                                  const std::vector<at::Tensor>& kept,
                                                  const std::string& where) {
  const StructureLayout layout = structure_layout(model);
  STUNT_CHECK(kept.size() == layout.ffns.size(), where, ": ", kept.size(), " channel lists for ",
              layout.ffns.size(), " FFNs");
  std::vector<size_t> counts;
  for (const at::Tensor& k : kept) counts.push_back(static_cast<size_t>(k.numel()));
  check_same_count(counts, "FFN", where);
  STUNT_CHECK_AS(ValueError, counts.front() > 0, where,
                 ": pruning every FFN channel leaves no FFN; keep at least one channel");
  TensorList tensors = model.state_dict();
  for (size_t f = 0; f < kept.size(); ++f) {
    const at::Tensor index = kept[f].to(at::kLong);
    STUNT_CHECK_AS(
        ValueError,
        index.min().item<int64_t>() >= 0 && index.max().item<int64_t>() < layout.ffn_width, where,
        ": a channel index of ", layout.ffns[f].prefix, " is out of range (", layout.ffn_width,
        " channels)");
    for (const SlicedTensor& t : layout.ffns[f].tensors)
      slice_tensor(tensors, t.name, t.dim, index);
  }
  nlohmann::json config = model.config().json();
  config[layout.ffn_width_key] = static_cast<int64_t>(counts.front());
  return model.rebuilt(std::move(config), std::move(tensors));
}

Importance parse_importance(const std::string& name, const std::string& where) {
  if (name == "activation") return Importance::Activation;
  if (name == "taylor") return Importance::Taylor;
  throw ValueError(str(where, ": importance '", name, "' is not known; use activation or taylor"));
}

std::vector<std::vector<int64_t>> choose_heads(const StructureLayout& layout,
                                               const std::vector<at::Tensor>& module_scores,
                                               int64_t prune, const std::string& where) {
  STUNT_CHECK_AS(ValueError, layout.heads_refusal.empty(), where, ": ", layout.heads_refusal);
  STUNT_CHECK_AS(
      ValueError, prune >= 0 && prune < layout.heads, where, ": pruning ", prune, " of ",
      layout.heads, " heads per layer",
      prune >= layout.heads ? " leaves no attention; keep at least one head" : " is negative");
  const int64_t group = layout.heads / layout.kv_heads;
  STUNT_CHECK_AS(ValueError, group == 1 || prune % layout.kv_heads == 0, where, ": pruning ", prune,
                 " of ", layout.heads, " heads does not split evenly over the ", layout.kv_heads,
                 " key/value heads (grouped-query attention keeps the same "
                 "number of query heads per key/value head); use a multiple of ",
                 layout.kv_heads);
  // T5's self-attention modules of a stack choose together, from their summed scores.
  std::vector<at::Tensor> head_scores;
  for (const at::Tensor& s : module_scores) {
    STUNT_CHECK(s.numel() == layout.heads, where, ": ", s.numel(), " head scores for ",
                layout.heads, " heads");
    head_scores.push_back(s.to(at::kDouble).reshape({layout.heads}));
  }
  std::map<int, at::Tensor> stack_scores;
  for (size_t m = 0; m < head_scores.size(); ++m) {
    const int s = layout.attention[m].shared_bias_stack;
    if (s < 0) continue;
    auto it = stack_scores.find(s);
    if (it == stack_scores.end()) {
      stack_scores.emplace(s, head_scores[m].clone());
    } else {
      it->second.add_(head_scores[m]);
    }
  }
  std::vector<std::vector<int64_t>> kept;
  for (size_t m = 0; m < head_scores.size(); ++m) {
    const int s = layout.attention[m].shared_bias_stack;
    const at::Tensor scores = s >= 0 ? stack_scores.at(s) : head_scores[m];
    std::vector<int64_t> keep;
    // Within each key/value group (the whole module without grouping) the lowest go.
    const int64_t groups = group == 1 ? 1 : layout.kv_heads;
    const int64_t size = layout.heads / groups;
    const int64_t prune_per_group = prune / groups;
    for (int64_t g = 0; g < groups; ++g) {
      const at::Tensor order = std::get<1>(scores.narrow(0, g * size, size)
                                               .sort(std::optional<bool>(true), /*dim=*/0,
                                                     /*descending=*/false));
      const at::Tensor survivors =
          std::get<0>(order.narrow(0, prune_per_group, size - prune_per_group).sort()) + g * size;
      for (int64_t i = 0; i < survivors.numel(); ++i) keep.push_back(survivors[i].item<int64_t>());
    }
    std::sort(keep.begin(), keep.end());
    kept.push_back(std::move(keep));
  }
  return kept;
}

std::vector<at::Tensor> choose_channels(const std::vector<at::Tensor>& channel_scores,
                                        int64_t prune) {
  std::vector<at::Tensor> kept;
  for (const at::Tensor& scores : channel_scores) {
    const int64_t width = scores.numel();
    STUNT_CHECK(prune >= 0 && prune < width, "pruning ", prune, " of ", width, " channels");
    const at::Tensor order =
        std::get<1>(scores.sort(std::optional<bool>(true), /*dim=*/0, /*descending=*/false));
    kept.push_back(std::get<0>(order.narrow(0, prune, width - prune).sort()));
  }
  return kept;
}

}  // namespace stunt::prune
