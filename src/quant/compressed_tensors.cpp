#include "stunt/quant/compressed_tensors.h"

#include <ATen/ATen.h>

#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "stunt/core/error.h"
#include "stunt/core/logging.h"
#include "stunt/io/safetensors_format.h"
#include "stunt/io/tensor_dtype.h"
#include "stunt/kernels/quantize.h"
#include "stunt/model/load.h"

namespace stunt::quant {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::ordered_json;

/// The compressed-tensors release whose format Stunt writes (and tests against).
constexpr const char* kCompressedTensorsVersion = "0.19.0";

bool is_packed_format(const std::string& format) { return format == "pack-quantized"; }

at::Tensor to_int8(const at::Tensor& integer_valued) { return integer_valued.to(at::kChar); }

/// Zero points as compressed-tensors stores them: int8 (fp8 for float types).
at::Tensor stored_zero_point(const at::Tensor& zp, const QuantArgs& args) {
  return args.type == QuantType::Float ? zp.to(at::kFloat8_e4m3fn) : to_int8(zp);
}

Json scheme_json(const QuantScheme& scheme) {
  Json j = scheme.to_json();
  if (!scheme.format) j["format"] = scheme_format(scheme);
  return j;
}

}  // namespace

std::string scheme_format(const QuantScheme& scheme) {
  if (scheme.format) return *scheme.format;
  if (!scheme.weights) return "dense";
  const QuantArgs& w = *scheme.weights;
  const auto& in = scheme.input_activations;
  // compressed-tensors' priority order: int-quantized, pack-quantized, float-quantized, naive.
  if (in && w.type == QuantType::Int) return "int-quantized";
  if (w.type == QuantType::Int && w.num_bits >= 1 && w.num_bits <= 8 &&
      !(in && in->type == QuantType::Float)) {
    return "pack-quantized";
  }
  if (in && w.type == QuantType::Float) return "float-quantized";
  return "naive-quantized";
}

void check_packable(const QuantArgs& weights, const std::string& format, const std::string& layer) {
  if (is_packed_format(format)) {
    STUNT_CHECK_AS(ValueError, weights.num_bits == 4 || weights.num_bits == 8, layer, ": ",
                   weights.num_bits,
                   "-bit weights cannot be written as pack-quantized: Stunt packs "
                   "4 and 8 bits, the widths every compressed-tensors and vLLM version lays out "
                   "alike; use num_bits 4 or 8");
    return;
  }
  const std::set<std::string> known = {"int-quantized", "float-quantized", "naive-quantized"};
  STUNT_CHECK_AS(NotImplementedError, known.count(format) > 0, layer,
                 ": Stunt does not write the '", format,
                 "' format; use pack-quantized, int-quantized, float-quantized or "
                 "naive-quantized");
  STUNT_CHECK_AS(ValueError, weights.type == QuantType::Float || weights.num_bits <= 8, layer, ": ",
                 weights.num_bits, "-bit weights do not fit the int8 tensors of ", format);
}

std::vector<std::pair<std::string, at::Tensor>> compress_layer(const std::string& name,
                                                               const at::Tensor& weight,
                                                               const LayerQuantization& record,
                                                               const QuantScheme& scheme,
                                                               c10::ScalarType scale_dtype) {
  std::vector<std::pair<std::string, at::Tensor>> out;
  const std::string format = scheme_format(scheme);
  STUNT_CHECK(!scheme.weights || record.weight.scale.defined(), name,
              ": the recipe selected this layer for quantization but it was never quantized");
  if (scheme.weights) {
    const QuantArgs& args = *scheme.weights;
    check_packable(args, format, name);
    const at::Tensor q =
        quantize_weight(weight.to(record.weight.scale.scalar_type()), record.weight, args);
    if (is_packed_format(format)) {
      out.emplace_back(name + ".weight_packed", kernels::pack_int32(q.to(at::kInt), args.num_bits));
      out.emplace_back(name + ".weight_scale", record.weight.scale.to(scale_dtype));
      out.emplace_back(name + ".weight_shape",
                       at::tensor({weight.size(0), weight.size(1)}, at::kLong));
      if (!args.symmetric) {
        const QuantStrategy s = args.resolved_strategy();
        at::Tensor zp = record.weight.zero_point;
        if (s == QuantStrategy::Group || s == QuantStrategy::Channel) {
          // Packed along the output dimension: [ceil(out * b / 32), groups].
          out.emplace_back(
              name + ".weight_zero_point",
              kernels::pack_int32(zp.t().to(at::kInt), args.num_bits).t().contiguous());
        } else {
          out.emplace_back(name + ".weight_zero_point", stored_zero_point(zp, args));
        }
      }
    } else {
      const at::Tensor stored =
          args.type == QuantType::Float ? q.to(at::kFloat8_e4m3fn) : to_int8(q);
      out.emplace_back(name + ".weight", stored);
      out.emplace_back(name + ".weight_scale", record.weight.scale.to(scale_dtype));
      if (!args.symmetric) {
        out.emplace_back(name + ".weight_zero_point",
                         stored_zero_point(record.weight.zero_point, args));
      }
    }
  }
  if (scheme.input_activations && scheme.input_activations->dynamic == DynamicKind::Static) {
    STUNT_CHECK(record.input.scale.defined(), name,
                ": static input activations were never "
                "calibrated (the recipe ran without calibration data?)");
    out.emplace_back(name + ".input_scale", record.input.scale.to(scale_dtype));
    if (!scheme.input_activations->symmetric) {
      out.emplace_back(name + ".input_zero_point",
                       stored_zero_point(record.input.zero_point, *scheme.input_activations));
    }
  }
  return out;
}

Json quantization_config(const QuantizationPlan& plan, const std::vector<std::string>& ignore) {
  Json groups = Json::object();
  std::set<std::string> formats;
  for (const auto& [name, scheme] : plan.groups()) {
    groups[name] = scheme_json(scheme);
    const std::string f = scheme_format(scheme);
    if (f != "dense") formats.insert(f);
  }
  Json config;
  config["config_groups"] = groups;
  config["format"] = formats.size() == 1 ? *formats.begin()
                     : formats.empty()   ? std::string("dense")
                                         : std::string("mixed-precision");
  config["global_compression_ratio"] = nullptr;
  config["ignore"] = ignore;
  config["kv_cache_scheme"] = nullptr;
  config["quant_method"] = "compressed-tensors";
  config["quantization_status"] = "compressed";
  config["sparsity_config"] = Json::object();
  config["transform_config"] = Json::object();
  config["version"] = kCompressedTensorsVersion;
  return config;
}

CompressedState compressed_state(const model::Model& model, const QuantizationPlan& plan) {
  std::vector<std::pair<std::string, at::Tensor>> state = model.state_dict();
  std::map<std::string, std::vector<std::pair<std::string, at::Tensor>>> replaced;
  for (const auto& [name, record] : plan.layers()) {
    const model::Layer& layer = model.layer(name);
    STUNT_CHECK_AS(NotImplementedError, layer.kind == model::LayerKind::Linear, name,
                   ": compressed-tensors stores quantized Linear layers, and this is a ",
                   layer.class_name, "; target Linear layers only or add it to ignore");
    STUNT_CHECK_AS(NotImplementedError, !layer.stored_transposed, name,
                   ": compressed-tensors quantizes nn.Linear modules, and this layer is stored "
                   "transposed (GPT-2's Conv1D); add it to ignore");
    const QuantScheme& scheme = plan.scheme(record.group);
    const c10::ScalarType scale_dtype = model.stored_dtype(name + ".weight");
    replaced[name + ".weight"] = compress_layer(name, layer.weight, record, scheme, scale_dtype);
  }
  CompressedState out;
  for (auto& [name, tensor] : state) {
    auto it = replaced.find(name);
    if (it == replaced.end()) {
      out.tensors.emplace_back(name, tensor);
      continue;
    }
    // Layers whose inputs alone are quantized keep their dense weight.
    bool keeps_weight = true;
    for (const auto& [n, t] : it->second) keeps_weight &= n != name + "_packed" && n != name;
    if (keeps_weight) out.tensors.emplace_back(name, tensor);
    for (auto& entry : it->second) out.tensors.push_back(entry);
    replaced.erase(it);
  }
  STUNT_CHECK(replaced.empty(), "quantized layer ", replaced.begin()->first,
              " is not in the model's state dict (a tied layer?)");
  for (const model::Layer* layer : model.layers()) {
    if (layer->kind == model::LayerKind::Linear && plan.find(layer->name) == nullptr) {
      out.unquantized.push_back(layer->name);
    }
  }
  return out;
}

void save_compressed(const model::HfModel& model, const QuantizationPlan& plan,
                     const fs::path& folder) {
  const CompressedState state = compressed_state(model, plan);
  nlohmann::json entries;
  entries["quantization_config"] =
      nlohmann::json::parse(quantization_config(plan, state.unquantized).dump());
  model.save_as(folder, state.tensors, entries);
}

}  // namespace stunt::quant
