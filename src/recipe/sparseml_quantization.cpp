#include "detail/sparseml_quantization.h"

#include "stunt/core/error.h"
#include "stunt/core/logging.h"

namespace stunt::recipe::detail {
namespace {

/// SparseML's QuantizationArgs (num_bits, symmetric, strategy, kwargs) as compressed-tensors'.
Value quant_args(const Value& sparseml, const std::string& where, bool input) {
  STUNT_CHECK_AS(ValueError, sparseml.is_object(), where,
                 ": expected num_bits, symmetric and strategy");
  Value out = {{"num_bits", 8}, {"type", "int"}, {"symmetric", !input}, {"strategy", "tensor"}};
  for (auto it = sparseml.begin(); it != sparseml.end(); ++it) {
    const std::string& key = it.key();
    if (key == "num_bits") {
      out["num_bits"] = it.value();
    } else if (key == "symmetric") {
      out["symmetric"] = it.value();
    } else if (key == "strategy") {
      const std::string strategy = it.value().get<std::string>();
      STUNT_CHECK_AS(ValueError, strategy == "tensor" || strategy == "channel", where,
                     ".strategy: '", strategy, "': SparseML's strategies are tensor and channel");
      STUNT_CHECK_AS(NotImplementedError, !(input && strategy == "channel"), where,
                     ".strategy: per-channel input activations are not implemented; use tensor");
      out["strategy"] = strategy;
    } else if (key == "kwargs") {
      STUNT_CHECK_AS(NotImplementedError, it.value().is_null() || it.value().empty(), where,
                     ".kwargs: observer arguments are not implemented yet; Stunt observes with a "
                     "moving-average min-max observer (inputs) and the weights' current range");
    } else {
      throw ValueError(str(where, ".", key,
                           ": not an argument of SparseML's QuantizationArgs (num_bits, "
                           "symmetric, strategy, kwargs)"));
    }
  }
  if (input) {
    // Static scales observed during training, as SparseML's FakeQuantize modules keep them.
    out["dynamic"] = false;
    out["observer"] = "minmax";
  }
  return out;
}

}  // namespace

SparsemlQuantization translate_sparseml_quantization(const ModifierSpec& spec) {
  const ArgReader a = spec.reader();
  const std::string where = spec.where();
  SparsemlQuantization out;
  if (a.has("start_epoch")) out.start_epoch = std::max(0.0, a["start_epoch"].get<double>());
  STUNT_CHECK_AS(ValueError, !a.has("end_epoch") || a["end_epoch"].get<double>() < 0, where,
                 ".end_epoch: quantization-aware training runs to the end of training; remove "
                 "end_epoch (or set it to -1)");
  if (a.has("disable_quantization_observer_epoch")) {
    out.freeze_observers_epoch = a["disable_quantization_observer_epoch"].get<double>();
  }
  out.strict = a.value("strict", true);

  // The scheme: SparseML's named ones, or its own arguments. "default" and "deepsparse" are
  // asymmetric 8-bit inputs and symmetric 8-bit weights, per tensor; "tensorrt" symmetric both.
  Value inputs = quant_args(Value::object(), where, /*input=*/true);
  Value weights = quant_args(Value::object(), where, /*input=*/false);
  bool has_inputs = true, has_weights = true;
  if (a.has("scheme")) {
    const Value& scheme = a["scheme"];
    if (scheme.is_string()) {
      if (scheme.get<std::string>() == "tensorrt") inputs["symmetric"] = true;
    } else {
      has_inputs = scheme.contains("input_activations") && !scheme["input_activations"].is_null();
      has_weights = scheme.contains("weights") && !scheme["weights"].is_null();
      for (auto it = scheme.begin(); it != scheme.end(); ++it) {
        const std::string key = where + ".scheme." + it.key();
        if (it.key() == "input_activations") {
          if (has_inputs) inputs = quant_args(it.value(), key, true);
        } else if (it.key() == "weights") {
          if (has_weights) weights = quant_args(it.value(), key, false);
        } else if (it.key() == "output_activations") {
          STUNT_CHECK_AS(NotImplementedError, it.value().is_null(), key,
                         ": quantization-aware training of output activations is not "
                         "implemented; remove output_activations");
        } else {
          throw ValueError(str(key,
                               ": not part of a SparseML scheme (input_activations, "
                               "weights, output_activations)"));
        }
      }
    }
  }
  // The fields of SparseML's earlier QuantizationModifier, where given.
  if (a.has("activation_bits")) inputs["num_bits"] = a["activation_bits"];
  if (a.has("weight_bits")) weights["num_bits"] = a["weight_bits"];
  if (a.value("tensorrt", false)) inputs["symmetric"] = true;
  if (a.contains("quantize_linear_activations") && !a["quantize_linear_activations"].get<bool>()) {
    has_inputs = false;
  }
  STUNT_CHECK_AS(NotImplementedError, !a.value("reduce_range", false), where,
                 ".reduce_range: 7-bit ranges are not implemented; remove reduce_range");
  STUNT_CHECK_AS(NotImplementedError, !a.value("quantize_embeddings", false), where,
                 ".quantize_embeddings: quantization-aware training of embeddings is not "
                 "implemented yet; Stunt fake-quantizes linear layers. Remove quantize_embeddings");
  STUNT_CHECK_AS(NotImplementedError, !a.value("quantize_embedding_activations", false), where,
                 ".quantize_embedding_activations: embeddings are not quantized; remove it");
  // Transformers have no convolutions or batch norms: these select nothing, as in SparseML.
  for (const char* key : {"quantize_conv_activations", "exclude_batchnorm"}) {
    if (a.contains(key))
      log::info(where, ".", key, ": the model has no convolutions or batch norms");
  }
  if (a.has("freeze_bn_stats_epoch")) {
    log::info(where, ".freeze_bn_stats_epoch: the model has no batch norms to freeze");
  }
  if (a.has("model_fuse_fn_name")) {
    const std::string fuse = a["model_fuse_fn_name"].get<std::string>();
    STUNT_CHECK_AS(NotImplementedError, fuse == "no_fuse", where, ".model_fuse_fn_name: '", fuse,
                   "': fusing modules (convolution + batch norm) is not implemented; Stunt's "
                   "models have nothing to fuse. Remove it or set no_fuse");
  }
  STUNT_CHECK_AS(NotImplementedError,
                 !a.has("model_fuse_fn_kwargs") || a["model_fuse_fn_kwargs"].empty(), where,
                 ".model_fuse_fn_kwargs: fusing modules is not implemented; remove it");
  STUNT_CHECK_AS(NotImplementedError, !a.has("scheme_overrides") || a["scheme_overrides"].empty(),
                 where,
                 ".scheme_overrides: per-module schemes are not implemented yet in SparseML's "
                 "syntax; write the recipe as llm-compressor config_groups");
  STUNT_CHECK_AS(NotImplementedError, !a.has("submodules") || a["submodules"].empty(), where,
                 ".submodules: quantizing only some submodules is not implemented yet; use "
                 "ignore for what to leave out");
  STUNT_CHECK_AS(NotImplementedError, !a.has("num_calibration_steps"), where,
                 ".num_calibration_steps: calibrating before training is not implemented yet; "
                 "the observers calibrate on the first training steps. Remove it");
  STUNT_CHECK_AS(ValueError, has_inputs || has_weights, where,
                 ": the scheme quantizes neither weights nor input activations");

  Value group = {{"targets", Value::array({"Linear"})}};
  if (has_weights) group["weights"] = weights;
  if (has_inputs) group["input_activations"] = inputs;
  Value ignore = Value::array();
  for (const char* key : {"ignore", "exclude_module_types"}) {
    if (a.has(key)) {
      for (const Value& entry : a[key]) ignore.push_back(entry);
    }
  }
  out.llmcompressor.type = spec.type;
  out.llmcompressor.group = spec.group;
  out.llmcompressor.path = spec.path;
  out.llmcompressor.source = spec.source;
  out.llmcompressor.args = {{"config_groups", {{"group_0", group}}}, {"ignore", ignore}};
  return out;
}

}  // namespace stunt::recipe::detail
