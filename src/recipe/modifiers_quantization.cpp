// Quantization modifiers, in llm-compressor's vocabulary (and SparseML's QAT modifier).
#include "detail/common_args.h"
#include "detail/quantization_modifiers.h"
#include "stunt/core/error.h"
#include "stunt/quant/quant_args.h"
#include "stunt/recipe/registry.h"

namespace stunt::recipe {
namespace {

using detail::concat;

/// A check that the value parses as T (QuantArgs, QuantScheme) under compressed-tensors' rules.
template <typename T>
std::function<std::string(const Value&)> parses_as() {
  return [](const Value& v) -> std::string {
    try {
      T::from_json(v);
      return "";
    } catch (const ValueError& e) {
      return e.what();
    }
  };
}

ArgSchema quant_args_schema() {
  return ArgSchema::object(
             {field("num_bits", ArgSchema::integer().range(1, 8)),
              field("type", ArgSchema::enumeration({"int", "float"}, /*ignore_case=*/true)),
              field("symmetric", ArgSchema::boolean()),
              field("group_size", ArgSchema::integer().nullable()),
              field("strategy", ArgSchema::enumeration({"tensor", "channel", "group", "block",
                                                        "token", "tensor_group", "attn_head"},
                                                       true)
                                    .nullable()),
              field("block_structure", ArgSchema::one_of({ArgSchema::list_of(ArgSchema::integer()),
                                                          ArgSchema::string()})
                                           .nullable()),
              field("dynamic", ArgSchema::one_of({ArgSchema::boolean(),
                                                  ArgSchema::enumeration({"local"}, true)})),
              field("actorder",
                    ArgSchema::one_of(
                        {ArgSchema::boolean(),
                         ArgSchema::enumeration({"group", "weight", "dynamic", "static"}, true)})
                        .nullable()),
              field("observer", ArgSchema::string().nullable()),
              field("observer_kwargs", ArgSchema::map_of(ArgSchema::any()).nullable()),
              field("scale_dtype", ArgSchema::string().nullable()),
              field("zp_dtype", ArgSchema::string().nullable())})
      .check(parses_as<quant::QuantArgs>());
}

ArgSchema scheme_schema() {
  return ArgSchema::object(
             {detail::targets_field(/*required=*/true),
              field("weights", quant_args_schema().nullable()),
              field("input_activations", quant_args_schema().nullable()),
              field("output_activations", quant_args_schema().nullable()),
              field("format", ArgSchema::enumeration(quant::compression_formats()).nullable())})
      .check(parses_as<quant::QuantScheme>());
}

std::string check_preset(const std::string& name) {
  if (quant::find_scheme_preset(name) != nullptr) return "";
  return str("'", name, "' is not a preset scheme; known presets: ", quant::scheme_preset_names(),
             " (or write config_groups for a custom scheme)");
}

/// QuantizationMixin: the fields every llm-compressor quantization modifier accepts.
std::vector<Field> quantization_mixin_fields() {
  ArgSchema preset =
      ArgSchema::string().check([](const Value& v) { return check_preset(v.get<std::string>()); });
  ArgSchema preset_map =
      ArgSchema::map_of(ArgSchema::string_or_list()).check([](const Value& v) -> std::string {
        for (auto it = v.begin(); it != v.end(); ++it) {
          if (auto p = check_preset(it.key()); !p.empty()) return p;
        }
        return "";
      });
  return {field("config_groups", ArgSchema::map_of(scheme_schema()).nullable()),
          detail::targets_field(),
          detail::ignore_field(),
          field("scheme", ArgSchema::one_of({preset, preset_map}).nullable(),
                "a preset such as W4A16, or {W4A16: [Linear]}"),
          field("kv_cache_scheme", quant_args_schema().nullable()),
          field("weight_observer", ArgSchema::string().nullable()),
          field("input_observer", ArgSchema::string().nullable()),
          field("output_observer", ArgSchema::string().nullable()),
          field("observer", ArgSchema::map_of(ArgSchema::string()).nullable()),
          field("bypass_divisibility_checks", ArgSchema::boolean(),
                "true is refused: a group size must divide every quantized layer's in_features")};
}

std::string needs_one_scheme(const Value& args) {
  const bool has_scheme = args.contains("scheme") && !args["scheme"].is_null();
  const bool has_groups = args.contains("config_groups") && !args["config_groups"].is_null();
  if (has_scheme && has_groups) {
    return "give either 'scheme' or 'config_groups', not both";
  }
  if (!has_scheme && !has_groups) {
    if (args.contains("kv_cache_scheme") && !args["kv_cache_scheme"].is_null()) {
      return "kv_cache_scheme: KV-cache quantization is not implemented in Stunt; remove it "
             "(weights and input activations can be quantized with 'scheme' or "
             "'config_groups')";
    }
    return "nothing to quantize: add 'scheme' (e.g. scheme: W4A16) or 'config_groups' (a "
           "GPTQModifier may also take the scheme of a QuantizationModifier before it)";
  }
  return "";
}

std::string observers_not_mixed(const Value& args) {
  const bool dict = args.contains("observer") && !args["observer"].is_null();
  for (const char* k : {"weight_observer", "input_observer", "output_observer"}) {
    if (dict && args.contains(k) && !args[k].is_null()) {
      return str("give either 'observer' or '", k, "', not both");
    }
  }
  return "";
}

}  // namespace

void register_quantization_modifiers(ModifierRegistry& r) {
  const auto base = detail::llmcompressor_base_fields();
  r.add({"QuantizationModifier",
         "quantization",
         "round-to-nearest weights and calibrated activation scales (post-training); "
         "quantization-aware training in a train stage",
         ArgSchema::object(
             concat({base,
                     quantization_mixin_fields(),
                     // Stunt's own, for quantization-aware training (train stages).
                     {field("learnable_scales", ArgSchema::boolean(),
                            "train: learn the weight scales (LSQ) instead of observing them"),
                      field("disable_quantization_observer_epoch", ArgSchema::number().nullable(),
                            "train: the epoch from which observed scales stay fixed")}})),
         {needs_one_scheme, observers_not_mixed},
         detail::make_quantization_modifier});
  r.add({"GPTQModifier",
         "quantization",
         "GPTQ: second-order weight quantization with sequential calibration",
         ArgSchema::object(concat(
             {base,
              quantization_mixin_fields(),
              {field("block_size", ArgSchema::integer().range(1, 1e9)),
               field("dampening_frac", ArgSchema::number().range(0, 1).nullable()),
               renamed_field("percdamp", "dampening_frac", ArgSchema::number().range(0, 1)),
               detail::sequential_update_field(),
               field("actorder",
                     ArgSchema::one_of(
                         {ArgSchema::boolean(),
                          ArgSchema::enumeration({"group", "weight", "dynamic", "static"}, true)})
                         .nullable()),
               detail::offload_hessians_field(),
               // Stunt's own: the Hessian and GPTQ's updates in float64, for very long
               // calibration sets or ill-conditioned layers where float32 sums lose precision.
               field("hessian_dtype", ArgSchema::enumeration({"float32", "float64"}))}})),
         {needs_one_scheme, observers_not_mixed},
         detail::make_gptq_modifier});
  r.add({"AutoRoundModifier",
         "quantization",
         "AutoRound: sign-gradient rounding optimization",
         ArgSchema::object(concat({base,
                                   quantization_mixin_fields(),
                                   {field("iters", ArgSchema::integer().range(1, 1e9)),
                                    field("enable_torch_compile", ArgSchema::boolean()),
                                    field("batch_size", ArgSchema::integer().range(1, 1e9)),
                                    field("lr", ArgSchema::number().nullable()),
                                    field("device_ids", ArgSchema::string().nullable()),
                                    field("disable_opt_rtn", ArgSchema::boolean())}})),
         {needs_one_scheme, observers_not_mixed}});
  ArgSchema smooth_mappings = ArgSchema::list_of(ArgSchema::list_of(ArgSchema::any()))
                                  .check([](const Value& v) -> std::string {
                                    for (const auto& m : v) {
                                      if (m.size() != 2 || !m[0].is_array() || !m[1].is_string()) {
                                        return "each mapping is [[balance layer patterns], "
                                               "smooth layer pattern], e.g. "
                                               "[[\"re:.*q_proj\"], \"re:.*input_layernorm\"]";
                                      }
                                    }
                                    return "";
                                  });
  const std::vector<Field> smooth_fields = {
      field("smoothing_strength", ArgSchema::number().range(0, 1), "migration strength alpha"),
      field("mappings", ArgSchema(smooth_mappings).nullable()), detail::ignore_field(),
      field("num_calibration_steps", ArgSchema::integer().range(1, 1e12).nullable(),
            "calibration samples to observe (the first N); none = all")};
  r.add({"SmoothQuantModifier",
         "quantization",
         "SmoothQuant: migrate activation outliers into weights before W8A8",
         ArgSchema::object(concat(
             {base,
              smooth_fields,
              {field("algorithm", ArgSchema::enumeration({"smoothquant", "log_equalization"}))}})),
         {},
         detail::make_smoothquant_modifier});
  r.add({"LogarithmicEqualizationModifier",
         "quantization",
         "logarithmic activation equalization (SmoothQuant variant)",
         ArgSchema::object(concat({base, smooth_fields})),
         {},
         detail::make_smoothquant_modifier});
  // AWQ: current llm-compressor takes only the transform's arguments and needs a quantization
  // modifier after it; older releases also took the scheme fields, which stay accepted.
  const ArgSchema awq_mapping =
      ArgSchema::object({required_field("smooth_layer", ArgSchema::string()),
                         required_field("balance_layers", ArgSchema::list_of(ArgSchema::string())),
                         field("activation_hook_target", ArgSchema::string().nullable())});
  r.add({"AWQModifier",
         "quantization",
         "AWQ: activation-aware per-channel scale search for weight-only quantization",
         ArgSchema::object(concat(
             {base,
              quantization_mixin_fields(),
              {field("mappings", ArgSchema::list_of(awq_mapping).nullable()),
               inert_field("offload_device", ArgSchema::string().nullable(),
                           "Stunt runs on the CPU, where nothing needs offloading"),
               field("duo_scaling",
                     ArgSchema::one_of({ArgSchema::boolean(), ArgSchema::enumeration({"both"})})),
               field("n_grid", ArgSchema::integer().range(1, 1e6))}})),
         {observers_not_mixed},
         detail::make_awq_modifier});
  // SparseML's quantization-aware training modifier (`!QuantizationModifier`).
  r.add({"QuantizationModifier",
         "quantization",
         "quantization-aware training (SparseML): fake quantization from start_epoch",
         ArgSchema::object(
             {field("start_epoch", ArgSchema::number()),
              field("end_epoch", ArgSchema::number()),
              field("scheme", ArgSchema::one_of(
                                  {ArgSchema::enumeration({"default", "deepsparse", "tensorrt"}),
                                   ArgSchema::map_of(ArgSchema::any())})
                                  .nullable()),
              field("scheme_overrides", ArgSchema::map_of(ArgSchema::any()).nullable()),
              detail::ignore_field(),
              field("submodules", ArgSchema::list_of(ArgSchema::string()).nullable()),
              field("disable_quantization_observer_epoch", ArgSchema::number().nullable()),
              field("freeze_bn_stats_epoch", ArgSchema::number().nullable()),
              field("model_fuse_fn_name", ArgSchema::string().nullable()),
              field("model_fuse_fn_kwargs", ArgSchema::map_of(ArgSchema::any()).nullable()),
              field("num_calibration_steps", ArgSchema::integer().nullable()),
              field("strict", ArgSchema::boolean()),
              field("quantize_embeddings", ArgSchema::boolean()),
              field("reduce_range", ArgSchema::boolean()),
              field("quantize_linear_activations", ArgSchema::boolean()),
              field("quantize_conv_activations", ArgSchema::boolean()),
              field("quantize_embedding_activations", ArgSchema::boolean()),
              field("exclude_batchnorm", ArgSchema::boolean()),
              field("exclude_module_types", ArgSchema::list_of(ArgSchema::string()).nullable()),
              field("activation_bits", ArgSchema::integer().range(1, 8)),
              field("weight_bits", ArgSchema::integer().range(1, 8)),
              field("tensorrt", ArgSchema::boolean())}),
         {},
         {},
         RecipeSyntax::SparseML});
}

}  // namespace stunt::recipe
