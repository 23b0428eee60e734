// Structured pruning modifiers: whole layers (LayerPruningModifier, SparseML's name), attention
// heads (HeadPruningModifier) and FFN channels (ChannelPruningModifier). Each returns a smaller
// model (prune/structure.h) instead of changing weights in place.
#include <cmath>
#include <optional>
#include <regex>
#include <set>

#include "detail/common_args.h"
#include "detail/pruning_modifiers.h"
#include "stunt/core/error.h"
#include "stunt/core/logging.h"
#include "stunt/core/strings.h"
#include "stunt/prune/structure.h"

namespace stunt::recipe::detail {
namespace {

/// `count` of `total` layer indices spread evenly from the first to the last, as distil-whisper
/// picks a student's layers: numpy's linspace(0, total - 1, count) truncated to integers.
std::vector<int64_t> evenly_spaced(int64_t total, int64_t count) {
  if (count == 1) return {0};
  std::vector<int64_t> out;
  const double step = static_cast<double>(total - 1) / static_cast<double>(count - 1);
  for (int64_t i = 0; i < count; ++i) {
    // linspace computes start + i * step and sets its last element to stop exactly.
    out.push_back(i == count - 1 ? total - 1 : static_cast<int64_t>(static_cast<double>(i) * step));
  }
  return out;
}

class LayerPruningModifier final : public Modifier {
 public:
  explicit LayerPruningModifier(ModifierSpec spec) : Modifier(std::move(spec)) {
    const ArgReader a = this->spec().reader();
    if (a.contains("stack") && !a["stack"].is_null()) stack_ = a["stack"].get<std::string>();
    if (a.contains("keep_every")) keep_every_ = a["keep_every"].get<int64_t>();
    if (a.contains("keep_last")) keep_last_ = a["keep_last"].get<bool>();
    if (a.contains("keep_layers")) keep_layers_ = a["keep_layers"].get<int64_t>();
    if (a.contains("layers")) {
      for (const Value& item : a["layers"]) {
        if (item.is_number_integer()) {
          indices_.push_back(item.get<int64_t>());
        } else {
          names_.push_back(item.get<std::string>());
        }
      }
    }
  }

  bool changes_structure() const override { return true; }

  std::unique_ptr<model::HfModel> restructure(model::HfModel& model,
                                              const std::vector<model::Batch>&,
                                              State& state) override {
    const std::string where = spec().where();
    const prune::StructureLayout layout = prune::structure_layout(model);
    std::string stack = stack_;
    if (stack.empty() && layout.stacks.size() > 1) {
      // Names say their stack ("decoder.block.3"); indices need `stack`.
      for (const prune::BlockStack& s : layout.stacks) {
        for (const std::string& n : names_) {
          if (n.rfind(s.prefix, 0) == 0) stack = s.name;
        }
      }
      STUNT_CHECK_AS(RecipeError, !stack.empty(), where, ": ", model.architecture(),
                     " has an encoder and a decoder; say which with stack: encoder or "
                     "stack: decoder (pruning only the decoder keeps quality while it is the part "
                     "that runs at every generated token)");
    }
    const prune::BlockStack* chosen = nullptr;
    for (const prune::BlockStack& s : layout.stacks) {
      if (s.name == stack || layout.stacks.size() == 1) chosen = &s;
    }
    STUNT_CHECK_AS(RecipeError, chosen != nullptr, where, ".stack: ", model.architecture(),
                   " has no stack '", stack, "'");
    std::vector<int64_t> drop = indices_;
    for (const std::string& name : names_) {
      // A block by name ("model.layers.3"), or re: patterns matched from the start.
      const bool pattern = name.rfind("re:", 0) == 0;
      const std::regex re(pattern ? name.substr(3) : std::string());
      bool matched = false;
      for (int64_t i = 0; i < chosen->count; ++i) {
        const std::string block = str(chosen->prefix, i);
        if (pattern ? std::regex_search(block, re, std::regex_constants::match_continuous)
                    : block == name) {
          drop.push_back(i);
          matched = true;
        }
      }
      STUNT_CHECK_AS(RecipeError, matched, where, ".layers: '", name, "' names no layer; ",
                     model.architecture(), "'s layers are ", chosen->prefix, "0 to ",
                     chosen->prefix, chosen->count - 1);
    }
    if (keep_every_ > 0) {
      for (int64_t i = 0; i < chosen->count; ++i) {
        const bool last = i == chosen->count - 1;
        if (i % keep_every_ != 0 && !(last && keep_last_)) drop.push_back(i);
      }
    }
    if (keep_layers_ > 0) {
      STUNT_CHECK_AS(RecipeError, keep_layers_ <= chosen->count, where,
                     ".keep_layers: ", keep_layers_, " is more layers than ", model.architecture(),
                     " has in ", chosen->prefix, "* (", chosen->count, ")");
      const std::vector<int64_t> kept = evenly_spaced(chosen->count, keep_layers_);
      const std::set<int64_t> keep(kept.begin(), kept.end());
      for (int64_t i = 0; i < chosen->count; ++i) {
        if (keep.count(i) == 0) drop.push_back(i);
      }
    }
    const std::set<int64_t> unique(drop.begin(), drop.end());
    std::vector<std::string> listed;
    for (int64_t i : unique) listed.push_back(std::to_string(i));
    log::info(spec().type, ": dropping ", unique.size(), " of ", chosen->count, " layers of ",
              chosen->prefix, "*: ", join(listed, ", "));
    std::unique_ptr<model::HfModel> smaller = prune::drop_blocks(model, chosen->name, drop, where);
    // Where each remaining block came from, through any earlier cut of the same stack.
    std::vector<int64_t>& kept = state.kept_blocks[chosen->prefix];
    std::vector<int64_t> origin;
    for (int64_t i = 0; i < chosen->count; ++i) {
      if (unique.count(i) == 0) origin.push_back(kept.empty() ? i : kept.at(i));
    }
    kept = std::move(origin);
    return smaller;
  }

 private:
  std::string stack_;
  std::vector<int64_t> indices_;
  std::vector<std::string> names_;
  int64_t keep_every_ = 0;
  bool keep_last_ = true;
  int64_t keep_layers_ = 0;
};

/// How many of `total` units `sparsity` (a fraction) or `count` prunes, in steps of `step`.
int64_t units_to_prune(std::optional<int64_t> count, double sparsity, int64_t total, int64_t step,
                       const std::string& where, const char* what) {
  if (count) return *count;
  const int64_t steps =
      std::llround(sparsity * static_cast<double>(total) / static_cast<double>(step));
  const int64_t prune = steps * step;
  if (std::abs(static_cast<double>(prune) / total - sparsity) > 1e-9) {
    log::info(where, ": sparsity ", sparsity, " of ", total, " ", what, " rounds to ", prune,
              step > 1 ? str(" (a multiple of ", step, ")") : std::string());
  }
  return prune;
}

/// Heads or channels chosen by an importance measured on calibration data; how many comes from
/// `sparsity` (a fraction) or a count under `count_key`.
class UnitPruningModifier : public Modifier {
 public:
  UnitPruningModifier(ModifierSpec spec, const char* count_key)
      : Modifier(std::move(spec)),
        importance_(prune::parse_importance(
            this->spec().reader().value("importance", std::string("activation")),
            this->spec().where() + ".importance")) {
    const ArgReader a = this->spec().reader();
    if (a.contains(count_key)) count_ = a[count_key].get<int64_t>();
    if (a.contains("sparsity")) sparsity_ = a["sparsity"].get<double>();
  }
  bool changes_structure() const override { return true; }

 protected:
  int64_t units(int64_t total, int64_t step, const char* what) const {
    return units_to_prune(count_, sparsity_, total, step, spec().where(), what);
  }

  prune::Importance importance_;
  std::optional<int64_t> count_;
  double sparsity_ = 0;
};

class HeadPruningModifier final : public UnitPruningModifier {
 public:
  explicit HeadPruningModifier(ModifierSpec spec)
      : UnitPruningModifier(std::move(spec), "num_heads") {}

  std::unique_ptr<model::HfModel> restructure(model::HfModel& model,
                                              const std::vector<model::Batch>& calibration,
                                              State&) override {
    const std::string where = spec().where();
    const prune::StructureLayout layout = prune::structure_layout(model);
    STUNT_CHECK_AS(ValueError, layout.heads_refusal.empty(), where, ": ", layout.heads_refusal);
    const int64_t step = layout.heads == layout.kv_heads ? 1 : layout.kv_heads;
    const int64_t prune = units(layout.heads, step, "heads");
    STUNT_CHECK_AS(ValueError, prune < layout.heads, where, ": pruning ", prune, " of ",
                   layout.heads,
                   " heads in every layer leaves no attention; keep at least one "
                   "head (sparsity below ",
                   1.0 - 1.0 / static_cast<double>(layout.heads) + 1e-9, ")");
    std::vector<std::string> outputs;
    for (const prune::AttentionModule& m : layout.attention) outputs.push_back(m.output_layer);
    const std::vector<at::Tensor> scores = prune::unit_importance(
        model, outputs, layout.head_dim, calibration, importance_, layout.causal_lm, where);
    const auto kept = prune::choose_heads(layout, scores, prune, where);
    log::info(spec().type, ": ", layout.heads, " -> ", layout.heads - prune, " heads in each of ",
              layout.attention.size(), " attention modules");
    return prune::keep_heads(model, kept, where);
  }
};

class ChannelPruningModifier final : public UnitPruningModifier {
 public:
  explicit ChannelPruningModifier(ModifierSpec spec)
      : UnitPruningModifier(std::move(spec), "num_channels") {}

  std::unique_ptr<model::HfModel> restructure(model::HfModel& model,
                                              const std::vector<model::Batch>& calibration,
                                              State&) override {
    const std::string where = spec().where();
    const prune::StructureLayout layout = prune::structure_layout(model);
    const int64_t prune = units(layout.ffn_width, 1, "channels");
    STUNT_CHECK_AS(ValueError, prune < layout.ffn_width, where, ": pruning ", prune, " of ",
                   layout.ffn_width, " FFN channels leaves no FFN; keep at least one");
    std::vector<std::string> outputs;
    for (const prune::FfnModule& f : layout.ffns) outputs.push_back(f.output_layer);
    const std::vector<at::Tensor> scores = prune::unit_importance(
        model, outputs, 1, calibration, importance_, layout.causal_lm, where);
    log::info(spec().type, ": FFN width ", layout.ffn_width, " -> ", layout.ffn_width - prune,
              " in each of ", layout.ffns.size(), " blocks");
    return prune::keep_ffn_channels(model, prune::choose_channels(scores, prune), where);
  }
};

}  // namespace

std::unique_ptr<Modifier> make_layer_pruning_modifier(const ModifierSpec& spec) {
  return std::make_unique<LayerPruningModifier>(spec);
}
std::unique_ptr<Modifier> make_head_pruning_modifier(const ModifierSpec& spec) {
  return std::make_unique<HeadPruningModifier>(spec);
}
std::unique_ptr<Modifier> make_channel_pruning_modifier(const ModifierSpec& spec) {
  return std::make_unique<ChannelPruningModifier>(spec);
}

}  // namespace stunt::recipe::detail
