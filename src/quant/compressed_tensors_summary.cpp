// `compress inspect` on compressed-tensors folders: schemes and per-layer storage, from
// config.json and the tensor headers (only the tiny weight_shape tensors are read).
#include "stunt/quant/compressed_tensors_summary.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cstdio>
#include <map>

#include "detail/compressed_tensors_config.h"
#include "stunt/core/error.h"
#include "stunt/io/checkpoint.h"
#include "stunt/io/inspect.h"
#include "stunt/quant/compressed_tensors.h"

namespace stunt::quant {

namespace fs = std::filesystem;

namespace {

/// The tensors compressed-tensors saves for a quantized layer's weight and inputs.
bool is_quantization_leaf(const std::string& leaf) {
  return leaf == "weight" || leaf == "weight_packed" || leaf == "weight_scale" ||
         leaf == "weight_zero_point" || leaf == "weight_shape" || leaf == "weight_g_idx" ||
         leaf == "input_scale" || leaf == "input_zero_point";
}

std::string fixed(double value, int decimals) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.*f", decimals, value);
  return text;
}

}  // namespace

double QuantizedLayerSummary::bits_per_weight() const {
  const double weights = static_cast<double>(out_features) * static_cast<double>(in_features);
  return weights > 0 ? 8.0 * static_cast<double>(stored_bytes) / weights : 0.0;
}

std::string describe(const QuantArgs& args) {
  std::string text =
      str(args.type == QuantType::Float ? "float" : "int", args.num_bits, " ",
          args.symmetric ? "symmetric" : "asymmetric", " ", to_string(args.resolved_strategy()));
  if (args.resolved_strategy() == QuantStrategy::Group && args.group_size) {
    text += str(" ", *args.group_size);
  }
  if (args.dynamic == DynamicKind::Dynamic) text += " dynamic";
  if (args.dynamic == DynamicKind::Local) text += " local";
  if (args.actorder) text += str(", actorder ", to_string(*args.actorder));
  return text;
}

std::optional<QuantizationSummary> summarize_compressed(const fs::path& folder) {
  if (!is_compressed_tensors_folder(folder)) return std::nullopt;
  const std::string source = (folder / "config.json").string();
  const nlohmann::json q = detail::read_config(folder)["quantization_config"];
  // A sparse-only folder (legacy sparse-bitmask layouts) has no schemes: its tensors are listed
  // as stored.
  if (!q.contains("config_groups") && q.contains("sparsity_config")) return std::nullopt;
  const detail::CompressedConfig config = detail::parse_compressed_config(q, source);
  QuantizationSummary summary;
  summary.format = q.value("format", std::string());
  summary.version = q.value("version", std::string());
  summary.groups = config.groups;
  summary.ignore = config.ignore;

  const auto checkpoint = io::Checkpoint::open(folder);
  std::map<std::string, const io::TensorEntry*> by_name;
  for (const io::TensorEntry& e : checkpoint->entries()) by_name[e.name] = &e;
  std::map<std::string, size_t> index;  // module -> position in summary.layers
  for (const io::TensorEntry& e : checkpoint->entries()) {
    if (!detail::ends_with(e.name, ".weight_scale")) continue;
    const std::string module = e.name.substr(0, e.name.size() - 13);
    const auto* group = detail::find_group(config, module);
    STUNT_CHECK_AS(FormatError, group != nullptr && group->second.weights, source, ": ", module,
                   " has quantized weights but no config group of quantization_config targets "
                   "it");
    QuantizedLayerSummary layer;
    layer.name = module;
    layer.group = group->first;
    layer.format = scheme_format(group->second);
    if (by_name.count(module + ".weight_shape")) {
      const at::Tensor shape = checkpoint->load(module + ".weight_shape").to(at::kLong);
      STUNT_CHECK_AS(FormatError, shape.numel() == 2, source, ": ", module,
                     ".weight_shape must hold [out, in], found ", shape.numel(), " values");
      layer.out_features = shape[0].item<int64_t>();
      layer.in_features = shape[1].item<int64_t>();
    } else {
      STUNT_CHECK_AS(FormatError, by_name.count(module + ".weight") > 0, source, ": ", module,
                     " has weight_scale but neither weight nor weight_packed + weight_shape");
      const io::TensorEntry& weight = *by_name.at(module + ".weight");
      STUNT_CHECK_AS(FormatError, weight.shape.size() == 2, source, ": ", module,
                     ".weight has shape of rank ", weight.shape.size(), ", expected [out, in]");
      layer.out_features = weight.shape[0];
      layer.in_features = weight.shape[1];
    }
    index[module] = summary.layers.size();
    summary.layers.push_back(std::move(layer));
  }
  for (const io::TensorEntry& e : checkpoint->entries()) {
    const auto dot = e.name.rfind('.');
    const auto found = dot == std::string::npos ? index.end() : index.find(e.name.substr(0, dot));
    if (found != index.end() && is_quantization_leaf(e.name.substr(dot + 1))) {
      summary.layers[found->second].stored_bytes += e.nbytes;
    } else {
      summary.other_bytes += e.nbytes;
    }
  }
  return summary;
}

nlohmann::ordered_json QuantizationSummary::to_json() const {
  nlohmann::ordered_json j;
  j["format"] = format;
  j["version"] = version;
  j["config_groups"] = nlohmann::ordered_json::object();
  for (const auto& [name, scheme] : groups) j["config_groups"][name] = scheme.to_json();
  j["ignore"] = ignore;
  uint64_t weights = 0, bytes = 0;
  j["layers"] = nlohmann::ordered_json::array();
  for (const QuantizedLayerSummary& l : layers) {
    j["layers"].push_back({{"name", l.name},
                           {"group", l.group},
                           {"format", l.format},
                           {"shape", {l.out_features, l.in_features}},
                           {"stored_bytes", l.stored_bytes},
                           {"bits_per_weight", l.bits_per_weight()}});
    weights += static_cast<uint64_t>(l.out_features * l.in_features);
    bytes += l.stored_bytes;
  }
  j["quantized_weights"] = weights;
  j["quantized_bytes"] = bytes;
  j["bits_per_weight"] = weights ? 8.0 * static_cast<double>(bytes) / weights : 0.0;
  j["other_bytes"] = other_bytes;
  return j;
}

std::string QuantizationSummary::to_table() const {
  std::string out = str("compressed-tensors quantization: format ", format.empty() ? "-" : format,
                        ", written by compressed-tensors ", version.empty() ? "?" : version, "\n");
  for (const auto& [name, scheme] : groups) {
    std::string targets;
    for (const auto& t : scheme.targets) targets += (targets.empty() ? "" : ", ") + t;
    out +=
        str("  ", name, " (targets ", targets, "): weights ",
            scheme.weights ? describe(*scheme.weights) : std::string("not quantized"), "; inputs ",
            scheme.input_activations ? describe(*scheme.input_activations)
                                     : std::string("not quantized"),
            "\n");
  }
  std::string ignored;
  for (const auto& i : ignore) ignored += (ignored.empty() ? "" : ", ") + i;
  out += str("  ignore: ", ignored.empty() ? "-" : ignored, "\n");
  size_t name_width = 5, format_width = 6, group_width = 5;
  for (const QuantizedLayerSummary& l : layers) {
    name_width = std::max(name_width, l.name.size());
    format_width = std::max(format_width, l.format.size());
    group_width = std::max(group_width, l.group.size());
  }
  auto pad = [](std::string text, size_t width) {
    if (text.size() < width) text.append(width - text.size(), ' ');
    return text;
  };
  auto lpad = [](std::string text, size_t width) {
    return text.size() < width ? std::string(width - text.size(), ' ') + text : text;
  };
  out += pad("layer", name_width) + "  " + pad("group", group_width) + "  " +
         pad("format", format_width) + "  " + pad("shape", 13) + "  " + lpad("stored", 10) + "  " +
         lpad("bits/weight", 11) + "\n";
  uint64_t weights = 0, bytes = 0;
  for (const QuantizedLayerSummary& l : layers) {
    out += pad(l.name, name_width) + "  " + pad(l.group, group_width) + "  " +
           pad(l.format, format_width) + "  " + pad(str(l.out_features, "x", l.in_features), 13) +
           "  " + lpad(io::human_bytes(l.stored_bytes), 10) + "  " +
           lpad(fixed(l.bits_per_weight(), 2), 11) + "\n";
    weights += static_cast<uint64_t>(l.out_features * l.in_features);
    bytes += l.stored_bytes;
  }
  out += str("quantized: ", layers.size(), " layers, ", weights, " weights in ",
             io::human_bytes(bytes), ", ",
             fixed(weights ? 8.0 * static_cast<double>(bytes) / weights : 0.0, 2),
             " bits per weight (scales and zero points included); other tensors ",
             io::human_bytes(other_bytes), "\n");
  return out;
}

}  // namespace stunt::quant
