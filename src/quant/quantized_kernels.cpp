#include "stunt/quant/quantized_kernels.h"

#include <ATen/ATen.h>

#include <map>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "stunt/core/error.h"
#include "stunt/core/logging.h"
#include "stunt/kernels/int4_linear.h"
#include "stunt/kernels/int8_linear.h"
#include "stunt/kernels/packed_float_linear.h"
#include "stunt/quant/compressed_tensors.h"
#include "stunt/quant/qparams.h"

namespace stunt::quant {
namespace {

/// The checkpoint's integers, recovered from the decompressed weight: w = (q − z)·s rounded to
/// the scale's dtype differs from the exact product by at most 2⁻⁹ of it, far below half a
/// step for |q − z| ≤ 255, so rounding w / s gives q − z back exactly.
at::Tensor integers(const model::Layer& layer, const QParams& qp, int64_t group_size) {
  at::Tensor scale = qp.scale.to(at::kFloat);
  at::Tensor w = layer.weight.to(at::kFloat);
  if (group_size > 0) {
    w = w.view({w.size(0), -1, group_size});
    scale = scale.view({scale.size(0), -1, 1});
  } else if (scale.dim() == 1) {
    scale = scale.view({-1, 1});
  }
  at::Tensor q = at::round(w / scale);
  if (qp.zero_point.defined()) {
    at::Tensor zero = qp.zero_point.to(at::kFloat);
    zero = group_size > 0 ? zero.view({zero.size(0), -1, 1})
                          : (zero.dim() == 1 ? zero.view({-1, 1}) : zero);
    q = q + zero;
  }
  return q.reshape({layer.weight.size(0), layer.weight.size(1)});
}

/// Why the int4 kernel does not take this layer, or "" when it does.
std::string int4_refusal(const model::Layer& layer, const QuantScheme& scheme) {
  const QuantArgs& w = *scheme.weights;
  if (scheme.input_activations) return "its inputs are quantized too (no W4A8 kernel)";
  const QuantStrategy s = w.resolved_strategy();
  if (s != QuantStrategy::Group && s != QuantStrategy::Channel) {
    return str("int4 kernels take group or channel scales, not ", to_string(s));
  }
  if (layer.out_features() % 16 != 0) {
    return str("out_features ", layer.out_features(), " is not a multiple of 16");
  }
  const int64_t group = s == QuantStrategy::Group ? *w.group_size : layer.in_features();
  if (group % 8 != 0) return str("group size ", group, " is not a multiple of 8");
  return "";
}

/// Why the int8 kernel does not take this layer, or "" when it does.
std::string int8_refusal(const QuantScheme& scheme, const LayerQuantization& record) {
  const QuantArgs& w = *scheme.weights;
  if (!scheme.input_activations) {
    return "weight-only int8 (W8A16) has no packed kernel yet";
  }
  const QuantArgs& in = *scheme.input_activations;
  if (!w.symmetric || !in.symmetric) return "the int8 kernel takes symmetric weights and inputs";
  const QuantStrategy ws = w.resolved_strategy();
  if (ws != QuantStrategy::Channel && ws != QuantStrategy::Tensor) {
    return str("the int8 kernel takes channel or tensor weight scales, not ", to_string(ws));
  }
  if (in.type != QuantType::Int || in.num_bits != 8) return "its inputs are not int8";
  const QuantStrategy is = in.resolved_strategy();
  if (in.dynamic != DynamicKind::Static) {
    if (is != QuantStrategy::Token) {
      return str("dynamic inputs must be quantized per token, not per ", to_string(is));
    }
  } else if (is != QuantStrategy::Tensor || !record.input.scale.defined() ||
             record.input.scale.numel() != 1) {
    return "static inputs must have one calibrated scale";
  }
  std::string why;
  if (!kernels::int8_linear_available(&why)) return why;
  return "";
}

void release_weight(model::Layer& layer) {
  layer.weight = at::empty(layer.weight.sizes(), layer.weight.options().device(at::kMeta));
}

void install_int4(model::Layer& layer, const QuantScheme& scheme, const QParams& qp) {
  const QuantArgs& args = *scheme.weights;
  const int64_t group = args.resolved_strategy() == QuantStrategy::Group ? *args.group_size : 0;
  const at::Tensor q = integers(layer, qp, group);
  const at::Tensor scale = qp.scale.reshape({layer.out_features(), -1});
  const at::Tensor zero =
      args.symmetric ? at::Tensor() : qp.zero_point.reshape({layer.out_features(), -1});
  auto packed =
      std::make_shared<kernels::Int4PackedWeight>(kernels::pack_int4_weight(q, scale, zero));
  layer.forward = [packed](const at::Tensor& input, const model::Layer& self) {
    if (kernels::int4_linear_supported(input, *packed, self.bias)) {
      return kernels::int4_linear(input, *packed, self.bias);
    }
    // Autograd or another dtype: the same weights, dequantized for this call.
    return at::linear(input, kernels::dequantize_int4_weight(*packed).to(input.scalar_type()),
                      self.bias);
  };
  release_weight(layer);
}

void install_int8(model::Layer& layer, const QuantScheme& scheme, const LayerQuantization& record) {
  const at::Tensor q = integers(layer, record.weight, 0);
  auto packed = std::make_shared<kernels::Int8PackedWeight>(
      kernels::pack_int8_weight(q, record.weight.scale));
  const bool dynamic = scheme.input_activations->dynamic != DynamicKind::Static;
  const float input_scale = dynamic ? 0.0f : record.input.scale.to(at::kFloat).item<float>();
  layer.forward = [packed, dynamic, input_scale](const at::Tensor& input,
                                                 const model::Layer& self) {
    STUNT_CHECK_AS(NotImplementedError, input.scalar_type() == at::kFloat && !input.requires_grad(),
                   self.name,
                   ": the packed int8 layer runs float32 inference only; load the model with "
                   "--kernels reference to train or run it in another dtype");
    const kernels::Int8Rows rows = dynamic ? kernels::quantize_rows_dynamic(input)
                                           : kernels::quantize_rows_static(input, input_scale);
    at::Tensor y = kernels::int8_linear(rows, *packed, self.bias);
    std::vector<int64_t> shape = input.sizes().vec();
    shape.back() = packed->out_features;
    return y.view(shape);
  };
  release_weight(layer);
}

}  // namespace

int install_packed_float_kernels(model::Model& model) {
  if (!kernels::packed_float_linear_available()) return 0;
  int packed_layers = 0;
  for (model::Layer* layer : model.layers()) {
    if (layer->kind != model::LayerKind::Linear || layer->forward || !layer->weight.defined() ||
        layer->weight.scalar_type() != at::kFloat || !layer->weight.is_cpu() ||
        layer->weight.dim() != 2) {
      continue;
    }
    auto packed =
        std::make_shared<kernels::PackedFloatWeight>(kernels::pack_float_weight(layer->weight));
    layer->forward = [packed](const at::Tensor& input, const model::Layer& self) {
      STUNT_CHECK_AS(NotImplementedError,
                     kernels::packed_float_linear_supported(input, *packed, self.bias), self.name,
                     ": the packed float32 layer runs float32 inference only (got ",
                     input.scalar_type(), input.requires_grad() ? " that requires grad" : "",
                     "); load the model with --kernels reference to train or run it in another "
                     "dtype");
      return kernels::packed_float_linear(input, *packed, self.bias);
    };
    // A weight another layer shares (a head tied to the embedding table) stays with it.
    release_weight(*layer);
    ++packed_layers;
  }
  return packed_layers;
}

KernelMode parse_kernel_mode(const std::string& text, const std::string& option) {
  if (text == "fast") return KernelMode::Fast;
  if (text == "reference") return KernelMode::Reference;
  throw ValueError(str(option, " \"", text,
                       "\" is not a kernel mode; use fast (packed int4/int8 kernels where they "
                       "apply) or reference (decompressed float32 weights)"));
}

std::vector<LayerKernel> install_quantized_kernels(model::Model& model,
                                                   const QuantizationPlan& plan) {
  std::vector<LayerKernel> report;
  for (const auto& [name, record] : plan.layers()) {
    model::Layer& layer = model.layer(name);
    const QuantScheme& scheme = plan.scheme(record.group);
    LayerKernel entry{name, "reference", "", layer.weight.numel() * 4};
    std::string why;
    if (layer.kind != model::LayerKind::Linear || !scheme.weights) {
      why = "only linear layers with quantized weights run packed";
    } else if (!record.weight.scale.defined()) {
      why = "the plan holds no weight scales for it";
    } else if (scheme.weights->type != QuantType::Int) {
      why = "float8 weights have no packed CPU kernel";
    } else if (scheme.weights->num_bits == 4) {
      why = int4_refusal(layer, scheme);
      if (why.empty()) {
        install_int4(layer, scheme, record.weight);
        entry.kernel = "int4-linear";
      }
    } else if (scheme.weights->num_bits == 8) {
      why = int8_refusal(scheme, record);
      if (why.empty()) {
        install_int8(layer, scheme, record);
        entry.kernel = "int8-linear";
      }
    } else {
      why = str(scheme.weights->num_bits, "-bit weights have no packed kernel");
    }
    entry.why = why;
    if (entry.kernel == "int4-linear") {
      const int64_t groups = record.weight.scale.numel() / layer.out_features();
      entry.weight_bytes = layer.out_features() * layer.in_features() / 2 +
                           layer.out_features() * groups * (scheme.weights->symmetric ? 4 : 8);
    } else if (entry.kernel == "int8-linear") {
      entry.weight_bytes = layer.out_features() * (layer.in_features() + 4);
    }
    report.push_back(std::move(entry));
  }
  return report;
}

std::unique_ptr<model::HfModel> load_model_for_inference(const std::filesystem::path& path,
                                                         KernelMode mode, bool explain,
                                                         std::vector<LayerKernel>* out) {
  QuantizationPlan plan;
  std::unique_ptr<model::HfModel> model = load_model(path, {}, &plan);
  if (mode == KernelMode::Fast && plan.empty()) {
    const int packed = install_packed_float_kernels(*model);
    if (packed > 0) log::info("float32 linear layers: ", packed, " run on MKL-packed weights");
    return model;
  }
  if (plan.empty()) return model;
  if (mode == KernelMode::Reference) {
    log::info(
        "quantized layers run the reference path (--kernels reference): decompressed "
        "float32 weights, fake-quantized inputs");
    if (out != nullptr) {
      for (const auto& [name, record] : plan.layers()) {
        const model::Layer& layer = model->layer(name);
        out->push_back({name, "reference", "--kernels reference", layer.weight.numel() * 4});
      }
    }
    return model;
  }
  const std::vector<LayerKernel> report = install_quantized_kernels(*model, plan);
  if (out != nullptr) *out = report;
  // The layers left in float32 (a head kept out of the scheme, for one).
  const int packed_float = install_packed_float_kernels(*model);
#if defined(__GLIBC__)
  // The decompressed float32 weights were freed piecemeal; hand their pages back, so that the
  // process holds about the packed size.
  malloc_trim(0);
#endif
  std::map<std::string, int> counts;
  int64_t bytes = 0;
  for (const LayerKernel& entry : report) {
    ++counts[entry.kernel];
    bytes += entry.weight_bytes;
    if (explain) {
      log::info(entry.layer, ": ", entry.kernel,
                entry.why.empty() ? std::string() : " (" + entry.why + ")");
    }
  }
  std::string summary;
  for (const auto& [kernel, count] : counts) {
    summary += str(summary.empty() ? "" : ", ", count, " ", kernel);
  }
  log::info("quantized layers: ", summary, "; their weights hold ", bytes / (1 << 20), " MiB",
            packed_float > 0
                ? str("; ", packed_float, " float32 linear layer(s) on MKL-packed weights")
                : std::string());
  for (const LayerKernel& entry : report) {
    if (entry.kernel != "reference") continue;
    // The first reason stands for the rest; --explain lists every layer.
    log::warn(counts["reference"], " quantized layer(s) run the slower reference path ",
              "(decompressed float32 weights), e.g. ", entry.layer, ": ", entry.why,
              explain ? "" : " (--explain lists each)");
    break;
  }
  return model;
}

}  // namespace stunt::quant
