#include "stunt/quant/quant_args.h"

#include <algorithm>
#include <cctype>
#include <set>

#include "stunt/core/error.h"
#include "stunt/core/strings.h"

namespace stunt::quant {
namespace {

using Json = nlohmann::ordered_json;

void reject_unknown_keys(const Json& j, const std::set<std::string>& known, const char* what) {
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (known.count(it.key()) == 0) {
      std::string list;
      for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
      throw ValueError(str(it.key(), ": unknown key in ", what, "; known keys: ", list));
    }
  }
}

std::string string_field(const Json& value, const char* key) {
  STUNT_CHECK(value.is_string(), key, ": expected a string, found ", value.dump());
  return value.get<std::string>();
}

QuantStrategy parse_strategy(const std::string& text) {
  const std::string s = to_lower(text);
  if (s == "tensor") return QuantStrategy::Tensor;
  if (s == "channel") return QuantStrategy::Channel;
  if (s == "group") return QuantStrategy::Group;
  if (s == "block") return QuantStrategy::Block;
  if (s == "token") return QuantStrategy::Token;
  if (s == "tensor_group") return QuantStrategy::TensorGroup;
  if (s == "attn_head") return QuantStrategy::AttnHead;
  throw ValueError(str("strategy: '", text,
                       "' is not a strategy; expected one of tensor, channel, "
                       "group, block, token, tensor_group, attn_head"));
}

std::optional<ActOrder> parse_actorder(const Json& value) {
  if (value.is_null()) return std::nullopt;
  // compressed-tensors 0.19 removed act-order 'group' (per-column group indices, slower kernels);
  // checkpoints that carry it no longer load, so it is refused here too.
  constexpr const char* kGroupRemoved =
      "' (act-order by group with a g_idx) was removed from compressed-tensors, so its "
      "checkpoints no longer load in vLLM; use actorder: weight (alias static) or null";
  if (value.is_boolean()) {
    if (!value.get<bool>()) return std::nullopt;
    throw ValueError(str("actorder: 'true", kGroupRemoved));
  }
  const std::string s = to_lower(string_field(value, "actorder"));
  if (s == "weight") return ActOrder::Weight;
  if (s == "static") return ActOrder::Static;
  if (s == "group" || s == "dynamic") throw ValueError(str("actorder: '", s, kGroupRemoved));
  throw ValueError(str("actorder: '", s,
                       "' is not an activation ordering; expected weight (alias static), false "
                       "or null"));
}

QuantArgs make_args(int bits, QuantType type, QuantStrategy strategy,
                    std::optional<int64_t> group = std::nullopt,
                    DynamicKind dynamic = DynamicKind::Static, bool symmetric = true) {
  QuantArgs a;
  a.num_bits = bits;
  a.type = type;
  a.strategy = strategy;
  a.group_size = group;
  a.dynamic = dynamic;
  a.symmetric = symmetric;
  return a;
}

}  // namespace

const char* to_string(QuantType type) { return type == QuantType::Int ? "int" : "float"; }

const char* to_string(QuantStrategy strategy) {
  switch (strategy) {
    case QuantStrategy::Tensor:
      return "tensor";
    case QuantStrategy::Channel:
      return "channel";
    case QuantStrategy::Group:
      return "group";
    case QuantStrategy::Block:
      return "block";
    case QuantStrategy::Token:
      return "token";
    case QuantStrategy::TensorGroup:
      return "tensor_group";
    case QuantStrategy::AttnHead:
      return "attn_head";
  }
  return "?";
}

const char* to_string(ActOrder order) { return order == ActOrder::Static ? "static" : "weight"; }

QuantStrategy QuantArgs::resolved_strategy() const {
  if (strategy) return *strategy;
  if (!group_size) return QuantStrategy::Tensor;
  return *group_size == -1 ? QuantStrategy::Channel : QuantStrategy::Group;
}

QuantArgs QuantArgs::from_json(const Json& j) {
  STUNT_CHECK(j.is_object(),
              "expected quantization arguments (num_bits, type, strategy, ...), "
              "found ",
              j.dump());
  reject_unknown_keys(
      j,
      {"num_bits", "type", "symmetric", "group_size", "strategy", "block_structure", "dynamic",
       "actorder", "observer", "observer_kwargs", "scale_dtype", "zp_dtype"},
      "quantization arguments");
  QuantArgs a;
  if (j.contains("num_bits")) {
    STUNT_CHECK(j["num_bits"].is_number_integer(),
                "num_bits: expected an integer such as 4 or 8, "
                "found ",
                j["num_bits"].dump());
    a.num_bits = j["num_bits"].get<int>();
  }
  if (j.contains("type")) {
    const std::string t = to_lower(string_field(j["type"], "type"));
    STUNT_CHECK(t == "int" || t == "float", "type: '", t,
                "' is not a quantization type; "
                "expected int or float");
    a.type = t == "int" ? QuantType::Int : QuantType::Float;
  }
  if (j.contains("symmetric")) {
    STUNT_CHECK(j["symmetric"].is_boolean(), "symmetric: expected true or false, found ",
                j["symmetric"].dump());
    a.symmetric = j["symmetric"].get<bool>();
  }
  if (j.contains("group_size") && !j["group_size"].is_null()) {
    STUNT_CHECK(j["group_size"].is_number_integer(),
                "group_size: expected an integer (e.g. 128, "
                "or -1 for per-channel), found ",
                j["group_size"].dump());
    a.group_size = j["group_size"].get<int64_t>();
  }
  if (j.contains("strategy") && !j["strategy"].is_null()) {
    a.strategy = parse_strategy(string_field(j["strategy"], "strategy"));
  }
  if (j.contains("block_structure") && !j["block_structure"].is_null()) {
    const auto& b = j["block_structure"];
    std::vector<int64_t> dims;
    if (b.is_string()) {  // the legacy "128x128" form
      const std::string s = b.get<std::string>();
      const auto x = s.find('x');
      try {
        STUNT_CHECK(x != std::string::npos, "");
        dims = {std::stoll(s.substr(0, x)), std::stoll(s.substr(x + 1))};
      } catch (const std::exception&) {
        throw ValueError(str("block_structure: '", s, "' is not of the form '128x128'"));
      }
    } else {
      STUNT_CHECK(b.is_array(), "block_structure: expected [rows, cols], found ", b.dump());
      for (const auto& d : b) {
        STUNT_CHECK(d.is_number_integer(), "block_structure: expected integers, found ", b.dump());
        dims.push_back(d.get<int64_t>());
      }
    }
    STUNT_CHECK(dims.size() == 2 && dims[0] > 0 && dims[1] > 0,
                "block_structure: expected two positive integers such as [128, 128]");
    a.block_structure = dims;
  }
  if (j.contains("dynamic")) {
    const auto& d = j["dynamic"];
    if (d.is_boolean()) {
      a.dynamic = d.get<bool>() ? DynamicKind::Dynamic : DynamicKind::Static;
    } else {
      STUNT_CHECK(d.is_string() && to_lower(d.get<std::string>()) == "local",
                  "dynamic: expected true, false or \"local\", found ", d.dump());
      a.dynamic = DynamicKind::Local;
    }
  }
  if (j.contains("actorder")) a.actorder = parse_actorder(j["actorder"]);
  if (j.contains("observer") && !j["observer"].is_null()) {
    a.observer = string_field(j["observer"], "observer");
  }
  if (j.contains("observer_kwargs") && !j["observer_kwargs"].is_null()) {
    STUNT_CHECK(j["observer_kwargs"].is_object(), "observer_kwargs: expected a mapping, found ",
                j["observer_kwargs"].dump());
    a.observer_kwargs = j["observer_kwargs"];
  }
  if (j.contains("scale_dtype") && !j["scale_dtype"].is_null()) {
    a.scale_dtype = string_field(j["scale_dtype"], "scale_dtype");
  }
  if (j.contains("zp_dtype") && !j["zp_dtype"].is_null()) {
    a.zp_dtype = string_field(j["zp_dtype"], "zp_dtype");
  }
  if (!a.strategy) a.strategy = a.resolved_strategy();
  a.validate();
  return a;
}

void QuantArgs::validate() const {
  if (type == QuantType::Int) {
    STUNT_CHECK(num_bits >= 1 && num_bits <= 8, "num_bits: ", num_bits,
                " is not supported for int quantization; use 4 or 8 (any of 1..8 for "
                "experiments)");
  } else {
    STUNT_CHECK(num_bits == 8 || num_bits == 4, "num_bits: float quantization has ", num_bits,
                " bits; use 8 (fp8 e4m3) or 4 (fp4 e2m1)");
  }
  STUNT_CHECK(!group_size || *group_size >= -1, "group_size: ", *group_size,
              " is invalid; use a positive group size, or -1 for per-channel");
  STUNT_CHECK(!group_size || *group_size != 0,
              "group_size: 0 is invalid; use a positive group "
              "size such as 128, or leave it out");
  const QuantStrategy s = resolved_strategy();
  const bool grouped = s == QuantStrategy::Group || s == QuantStrategy::TensorGroup;
  STUNT_CHECK(!grouped || (group_size && *group_size > 0), "strategy '", to_string(s),
              "' needs a positive group_size; add e.g. group_size: 128");
  STUNT_CHECK(grouped || !group_size || *group_size <= 0, "group_size: ", group_size.value_or(0),
              " requires strategy 'group' (strategy is '", to_string(s),
              "'); set strategy: group or remove group_size");
  STUNT_CHECK((s == QuantStrategy::Block) == block_structure.has_value(),
              s == QuantStrategy::Block ? "strategy 'block' needs block_structure, e.g. [128, 128]"
                                        : "block_structure needs strategy: block");
  STUNT_CHECK(s != QuantStrategy::Token || dynamic != DynamicKind::Static,
              "strategy 'token' cannot be static: per-token scales exist only at run time; set "
              "dynamic: true, or use strategy 'tensor' for static activation scales");
  if (dynamic == DynamicKind::Dynamic) {
    STUNT_CHECK(s == QuantStrategy::Token || s == QuantStrategy::Tensor || grouped,
                "dynamic quantization needs strategy token, tensor, group or tensor_group (found '",
                to_string(s), "')");
  }
  STUNT_CHECK(dynamic != DynamicKind::Local || s == QuantStrategy::TensorGroup,
              "dynamic: local needs strategy 'tensor_group'");
}

Json QuantArgs::to_json() const {
  Json j;
  j["num_bits"] = num_bits;
  j["type"] = to_string(type);
  j["symmetric"] = symmetric;
  j["group_size"] = group_size ? Json(*group_size) : Json(nullptr);
  j["strategy"] = to_string(resolved_strategy());
  j["block_structure"] = block_structure ? Json(*block_structure) : Json(nullptr);
  j["dynamic"] =
      dynamic == DynamicKind::Local ? Json("local") : Json(dynamic == DynamicKind::Dynamic);
  j["actorder"] = actorder ? Json(to_string(*actorder)) : Json(nullptr);
  j["observer"] = observer ? Json(*observer) : Json(nullptr);
  j["observer_kwargs"] = observer_kwargs;
  if (scale_dtype) j["scale_dtype"] = *scale_dtype;
  if (zp_dtype) j["zp_dtype"] = *zp_dtype;
  return j;
}

QuantScheme QuantScheme::from_json(const Json& j) {
  STUNT_CHECK(j.is_object(), "expected a scheme (targets, weights, input_activations, ...), found ",
              j.dump());
  reject_unknown_keys(j,
                      {"targets", "weights", "input_activations", "output_activations", "format"},
                      "a quantization scheme");
  QuantScheme s;
  STUNT_CHECK(j.contains("targets"),
              "targets: missing; a scheme needs the layers it applies to, "
              "e.g. targets: [\"Linear\"]");
  const auto& t = j["targets"];
  if (t.is_string()) {
    s.targets = {t.get<std::string>()};
  } else {
    STUNT_CHECK(t.is_array() && !t.empty(),
                "targets: expected a list of layer names, classes or "
                "re: patterns, found ",
                t.dump());
    for (const auto& item : t) s.targets.push_back(string_field(item, "targets"));
  }
  auto read = [&](const char* key) -> std::optional<QuantArgs> {
    if (!j.contains(key) || j[key].is_null()) return std::nullopt;
    try {
      return QuantArgs::from_json(j[key]);
    } catch (const ValueError& e) {
      throw ValueError(str(key, ".", e.what()));
    }
  };
  s.weights = read("weights");
  s.input_activations = read("input_activations");
  s.output_activations = read("output_activations");
  if (j.contains("format") && !j["format"].is_null()) {
    s.format = string_field(j["format"], "format");
    const auto& formats = compression_formats();
    STUNT_CHECK(std::find(formats.begin(), formats.end(), *s.format) != formats.end(), "format: '",
                *s.format, "' is not a compressed-tensors format");
  }
  s.validate();
  return s;
}

void QuantScheme::validate() const {
  for (const auto* act : {&input_activations, &output_activations}) {
    if (!act->has_value()) continue;
    const char* which = act == &input_activations ? "input_activations" : "output_activations";
    STUNT_CHECK(!(*act)->actorder, which,
                ".actorder: activation ordering applies to weights "
                "only; remove it from ",
                which);
  }
  if (input_activations) {
    const QuantStrategy s = input_activations->resolved_strategy();
    STUNT_CHECK(s == QuantStrategy::Token || s == QuantStrategy::Tensor ||
                    s == QuantStrategy::Group || s == QuantStrategy::TensorGroup ||
                    s == QuantStrategy::AttnHead,
                "input_activations.strategy: '", to_string(s),
                "' is not supported for activations; use token, tensor or group");
  }
}

Json QuantScheme::to_json() const {
  Json j;
  j["targets"] = targets;
  j["weights"] = weights ? weights->to_json() : Json(nullptr);
  j["input_activations"] = input_activations ? input_activations->to_json() : Json(nullptr);
  j["output_activations"] = output_activations ? output_activations->to_json() : Json(nullptr);
  j["format"] = format ? Json(*format) : Json(nullptr);
  return j;
}

const std::vector<SchemePreset>& scheme_presets() {
  static const std::vector<SchemePreset> presets = [] {
    using S = QuantStrategy;
    using T = QuantType;
    std::vector<SchemePreset> p;
    auto add = [&](std::string name, std::string summary, std::optional<QuantArgs> w,
                   std::optional<QuantArgs> in = std::nullopt) {
      QuantScheme scheme;
      scheme.targets = {"Linear"};
      scheme.weights = std::move(w);
      scheme.input_activations = std::move(in);
      p.push_back({std::move(name), std::move(summary), std::move(scheme)});
    };
    for (int bits : {2, 3, 4, 5, 6, 7, 8}) {
      add(str("W", bits, "A16"),
          str("int", bits, " weights, group 128, symmetric; 16-bit activations"),
          make_args(bits, T::Int, S::Group, 128));
    }
    add("W4A16_ASYM", "int4 weights, group 128, asymmetric; 16-bit activations",
        make_args(4, T::Int, S::Group, 128, DynamicKind::Static, /*symmetric=*/false));
    add("W8A8", "int8 weights per channel; int8 activations per token, dynamic",
        make_args(8, T::Int, S::Channel), make_args(8, T::Int, S::Token, {}, DynamicKind::Dynamic));
    add("INT8", "alias of W8A8", make_args(8, T::Int, S::Channel),
        make_args(8, T::Int, S::Token, {}, DynamicKind::Dynamic));
    add("W4A8", "int4 weights, group 128; int8 activations per token, dynamic",
        make_args(4, T::Int, S::Group, 128),
        make_args(8, T::Int, S::Token, {}, DynamicKind::Dynamic));
    add("W4AFP8", "int4 weights, group 128; fp8 activations per token, dynamic",
        make_args(4, T::Int, S::Group, 128),
        make_args(8, T::Float, S::Token, {}, DynamicKind::Dynamic));
    QuantArgs fp8_static_input = make_args(8, T::Float, S::Tensor);
    fp8_static_input.observer = "static_minmax";
    add("FP8", "fp8 e4m3 weights per tensor; fp8 activations per tensor, static",
        make_args(8, T::Float, S::Tensor), fp8_static_input);
    add("FP8_DYNAMIC", "fp8 e4m3 weights per channel; fp8 activations per token, dynamic",
        make_args(8, T::Float, S::Channel),
        make_args(8, T::Float, S::Token, {}, DynamicKind::Dynamic));
    return p;
  }();
  return presets;
}

const SchemePreset* find_scheme_preset(const std::string& name) {
  std::string upper = name;
  std::transform(upper.begin(), upper.end(), upper.begin(),
                 [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  for (const auto& p : scheme_presets()) {
    if (p.name == upper) return &p;
  }
  return nullptr;
}

std::string scheme_preset_names() {
  std::string names;
  for (const auto& p : scheme_presets()) names += (names.empty() ? "" : ", ") + p.name;
  return names;
}

const std::vector<std::string>& compression_formats() {
  static const std::vector<std::string> formats = {"dense",
                                                   "sparse-bitmask",
                                                   "sparse-24-bitmask",
                                                   "int-quantized",
                                                   "float-quantized",
                                                   "naive-quantized",
                                                   "pack-quantized",
                                                   "marlin-24",
                                                   "nvfp4-pack-quantized",
                                                   "mxfp4-pack-quantized",
                                                   "mxfp8-quantized"};
  return formats;
}

}  // namespace stunt::quant
