// Pruning modifiers: llm-compressor's one-shot ones and SparseML's gradual ones.
#include "detail/common_args.h"
#include "detail/pruning_modifiers.h"
#include "stunt/core/error.h"
#include "stunt/recipe/registry.h"

namespace stunt::recipe {
namespace {

using detail::concat;

ArgSchema params_schema() {
  // SparseML: a list of parameter names / re: patterns, or __ALL__ / __ALL_PRUNABLE__.
  return ArgSchema::one_of({ArgSchema::string(), ArgSchema::list_of(ArgSchema::string())});
}

std::string needs_targets_or_params(const Value& args) {
  if (args.contains("targets") || args.contains("params")) return "";
  return "missing 'targets' (llm-compressor) or 'params' (SparseML): name the layers to prune, "
         "e.g. targets: [\"re:.*mlp.*\"] or params: __ALL_PRUNABLE__";
}

std::string init_not_above_final(const Value& args) {
  const auto& i = args.contains("init_sparsity") ? args["init_sparsity"] : Value();
  const auto& f = args.contains("final_sparsity") ? args["final_sparsity"] : Value();
  if (i.is_number() && f.is_number() && i.get<double>() > f.get<double>()) {
    return str("init_sparsity ", i.get<double>(), " is above final_sparsity ", f.get<double>(),
               "; gradual pruning only increases sparsity");
  }
  return "";
}

std::string epochs_ordered(const Value& args) {
  if (args.contains("start_epoch") && args.contains("end_epoch") &&
      args["start_epoch"].is_number() && args["end_epoch"].is_number()) {
    const double s = args["start_epoch"].get<double>(), e = args["end_epoch"].get<double>();
    if (e >= 0 && e < s) return str("end_epoch ", e, " is before start_epoch ", s);
  }
  return "";
}

std::string layers_or_keep_every(const Value& args) {
  const int given = static_cast<int>(args.contains("layers")) +
                    static_cast<int>(args.contains("keep_every")) +
                    static_cast<int>(args.contains("keep_layers"));
  if (given > 1) return "give one of layers, keep_every and keep_layers";
  if (given == 0) {
    return "missing 'layers' (indices or names of the layers to drop), 'keep_every' (keep layers "
           "0, k, 2k, ... and the last) or 'keep_layers' (keep n evenly spaced layers, the first "
           "and the last among them)";
  }
  if (args.contains("keep_last") && !args.contains("keep_every")) {
    return "keep_last goes with keep_every (keep_layers always keeps the last layer)";
  }
  return "";
}

/// Heads or channels: a fraction, or a count per layer.
std::function<std::string(const Value&)> sparsity_or_count(const char* count_key) {
  return [count_key](const Value& args) -> std::string {
    const bool sparsity = args.contains("sparsity");
    const bool count = args.contains(count_key);
    if (sparsity == count) {
      return sparsity ? str("give either sparsity or ", count_key, ", not both")
                      : str("missing 'sparsity' (the fraction to prune in every layer) or '",
                            count_key, "' (how many to prune in every layer)");
    }
    return "";
  };
}

std::string owl_all_or_none(const Value& args) {
  const int given = int(args.contains("sparsity_profile") && !args["sparsity_profile"].is_null()) +
                    int(args.contains("owl_m") && !args["owl_m"].is_null()) +
                    int(args.contains("owl_lmbda") && !args["owl_lmbda"].is_null());
  if (given == 0 || given == 3) return "";
  return "OWL needs all of sparsity_profile: owl, owl_m and owl_lmbda, or none of them";
}

}  // namespace

void register_pruning_modifiers(ModifierRegistry& r) {
  const auto base = detail::llmcompressor_base_fields();
  const std::vector<Field> sparsity_base = {
      required_field("sparsity",
                     ArgSchema::one_of({detail::sparsity_fraction(),
                                        ArgSchema::list_of(detail::sparsity_fraction())}),
                     "fraction of weights to zero, in [0, 1)"),
      field("sparsity_profile", ArgSchema::enumeration({"owl"}, true).nullable()),
      field("mask_structure", detail::mask_structure(), "\"unstructured\" or N:M such as \"2:4\""),
      field("owl_m", ArgSchema::integer().range(1, 1e9).nullable()),
      field("owl_lmbda", ArgSchema::number().nullable()),
      detail::sequential_update_field(),
      detail::targets_field(),
      detail::ignore_field()};
  const std::vector<Field> hessian_fields = {
      field("block_size", ArgSchema::integer().range(1, 1e9)),
      field("dampening_frac", ArgSchema::number().range(0, 1).nullable()),
      field("preserve_sparsity_mask", ArgSchema::boolean()),
      renamed_field("percdamp", "dampening_frac", ArgSchema::number().range(0, 1)),
      detail::offload_hessians_field()};
  r.add({"SparseGPTModifier",
         "pruning",
         "SparseGPT: one-shot pruning with second-order weight reconstruction",
         ArgSchema::object(concat({base, sparsity_base, hessian_fields})),
         {owl_all_or_none},
         detail::make_sparsegpt_modifier});
  r.add({"WandaPruningModifier",
         "pruning",
         "Wanda: one-shot pruning by |weight| x input activation norm",
         ArgSchema::object(concat({base, sparsity_base})),
         {owl_all_or_none},
         detail::make_wanda_modifier});

  // Both vocabularies: llm-compressor (targets, update_scheduler, mask_structure) and SparseML
  // (params, inter_func, mask_type, *_epoch).
  const std::vector<Field> gradual = {
      detail::targets_field(),
      field("params", params_schema()),
      required_field("init_sparsity", detail::sparsity_fraction()),
      required_field("final_sparsity", ArgSchema::one_of({detail::sparsity_fraction(),
                                                          ArgSchema::map_of(ArgSchema::any())})),
      field("update_scheduler", ArgSchema::string()),
      field("scheduler_args", ArgSchema::map_of(ArgSchema::any())),
      field("inter_func", ArgSchema::enumeration({"linear", "cubic", "inverse_cubic"})),
      field("mask_structure", ArgSchema::string()),
      field("mask_type", ArgSchema::one_of(
                             {detail::mask_structure(), ArgSchema::list_of(ArgSchema::integer())})),
      field("leave_enabled", ArgSchema::boolean()),
      field("apply_globally", ArgSchema::boolean()),
      field("global_sparsity", ArgSchema::boolean()),
      field("phased", ArgSchema::boolean()),
      field("score_type", ArgSchema::enumeration({"magnitude"}))};
  r.add({"MagnitudePruningModifier",
         "pruning",
         "magnitude pruning, one-shot or gradual from init_sparsity to final_sparsity",
         ArgSchema::object(concat({base, detail::sparseml_epoch_fields(), gradual})),
         {needs_targets_or_params, init_not_above_final, epochs_ordered},
         detail::make_magnitude_pruning_modifier});
  r.add({"GMPruningModifier",
         "pruning",
         "gradual magnitude pruning (SparseML) on a cubic or linear schedule",
         ArgSchema::object(concat({base, detail::sparseml_epoch_fields(), gradual})),
         {needs_targets_or_params, init_not_above_final, epochs_ordered},
         detail::make_magnitude_pruning_modifier});
  // SparseML's name for gradual magnitude pruning with one threshold over all its params.
  r.add_alias({"GlobalMagnitudePruningModifier", "GMPruningModifier", {{"global_sparsity", true}}});
  r.add({"MovementPruningModifier", "pruning",
         "movement pruning (Sanh et al. 2020): scores from -grad x weight while fine-tuning",
         ArgSchema::object(concat({base, detail::sparseml_epoch_fields(), gradual}))});
  // Structured pruning: the model gets smaller tensors and a new config.
  const std::vector<Field> importance = {
      field("importance", ArgSchema::enumeration({"activation", "taylor"}),
            "activation: output-projection input norms x column norms; taylor: first-order loss "
            "change (causal language models)")};
  r.add({"LayerPruningModifier",
         "pruning",
         "drops whole transformer layers (a list, every k-th kept, or n evenly spaced kept); T5: "
         "one stack at a time",
         ArgSchema::object(concat(
             {base,
              detail::sparseml_epoch_fields(),
              {field("layers",
                     ArgSchema::list_of(ArgSchema::one_of(
                         {ArgSchema::integer().range(0, 1e9), ArgSchema::string()})),
                     "layer indices, names (model.layers.3) or re: patterns"),
               field("keep_every", ArgSchema::integer().range(1, 1e9),
                     "keep layers 0, k, 2k, ... (and the last one, unless keep_last: false)"),
               field("keep_last", ArgSchema::boolean()),
               field("keep_layers", ArgSchema::integer().range(1, 1e9),
                     "keep n evenly spaced layers, first and last included (DistilBERT-style and "
                     "distil-whisper students: floor(linspace(0, L - 1, n)))"),
               field("stack", ArgSchema::enumeration({"encoder", "decoder"}).nullable(),
                     "T5: the stack to prune")}})),
         {layers_or_keep_every},
         detail::make_layer_pruning_modifier});
  r.add({"HeadPruningModifier",
         "pruning",
         "removes the least important attention heads of every layer (same count everywhere; "
         "grouped-query attention keeps its grouping)",
         ArgSchema::object(concat({base,
                                   importance,
                                   {field("sparsity", detail::sparsity_fraction()),
                                    field("num_heads", ArgSchema::integer().range(0, 1e9))}})),
         {sparsity_or_count("num_heads")},
         detail::make_head_pruning_modifier});
  r.add({"ChannelPruningModifier",
         "pruning",
         "removes the least important FFN channels (intermediate neurons) of every layer",
         ArgSchema::object(concat({base,
                                   importance,
                                   {field("sparsity", detail::sparsity_fraction()),
                                    field("num_channels", ArgSchema::integer().range(0, 1e9))}})),
         {sparsity_or_count("num_channels")},
         detail::make_channel_pruning_modifier});
  r.add({"ConstantPruningModifier",
         "pruning",
         "keeps existing zeros fixed through later stages and training",
         ArgSchema::object(concat({base,
                                   detail::sparseml_epoch_fields(),
                                   {detail::targets_field(), field("params", params_schema())}})),
         {needs_targets_or_params},
         detail::make_constant_pruning_modifier});
}

}  // namespace stunt::recipe
