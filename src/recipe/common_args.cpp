#include <string>

#include "detail/common_args.h"
#include "stunt/core/error.h"

namespace stunt::recipe::detail {

std::vector<Field> llmcompressor_base_fields() {
  return {inert_field("index", ArgSchema::integer().nullable(),
                      "llm-compressor numbers a stage's modifiers itself; Stunt runs them in "
                      "recipe order"),
          field("start", ArgSchema::number().nullable(),
                "epoch to start at; -1 or none = one-shot (training schedules are refused until "
                "Stunt trains)"),
          field("end", ArgSchema::number().nullable(), "epoch to end at; -1 or none = one-shot"),
          field("update", ArgSchema::number().nullable(),
                "update frequency in epochs; none = one-shot")};
}

std::vector<Field> sparseml_epoch_fields() {
  return {field("start_epoch", ArgSchema::number()), field("end_epoch", ArgSchema::number()),
          field("update_frequency", ArgSchema::number())};
}

Field sequential_update_field() {
  return inert_field("sequential_update", ArgSchema::boolean().nullable(),
                     "llm-compressor deprecated it; layers are always updated block by block, "
                     "each block calibrated on the outputs of the blocks already compressed");
}

Field offload_hessians_field() {
  return inert_field("offload_hessians", ArgSchema::boolean(),
                     "Hessians stay in host memory on a CPU run; offloading would only move "
                     "them, not change the result");
}

Field targets_field(bool required) {
  ArgSchema s = ArgSchema::string_or_list();
  return required ? required_field("targets", s, "e.g. [\"Linear\"] or [\"re:.*mlp.*\"]")
                  : field("targets", s);
}

Field ignore_field() { return field("ignore", ArgSchema::string_or_list().nullable()); }

ArgSchema sparsity_fraction() { return ArgSchema::number().range(0.0, 1.0, false, true); }

ArgSchema mask_structure() {
  return ArgSchema::string().check([](const Value& v) -> std::string {
    const std::string s = v.get<std::string>();
    if (s == "unstructured" || s == "0:0") return "";
    const auto colon = s.find(':');
    const auto digits = [](const std::string& t) {
      return !t.empty() && t.size() <= 6 && t.find_first_not_of("0123456789") == std::string::npos;
    };
    if (colon != std::string::npos && digits(s.substr(0, colon)) && digits(s.substr(colon + 1))) {
      const long n = std::stol(s.substr(0, colon)), mm = std::stol(s.substr(colon + 1));
      if (n > 0 && n < mm) return "";
      return str("'", s, "' is not a valid N:M structure; N must be in 1..M-1 (e.g. \"2:4\")");
    }
    return str("'", s, "' is not a mask structure; use \"unstructured\" or N:M such as \"2:4\"");
  });
}

std::vector<Field> concat(std::vector<std::vector<Field>> parts) {
  std::vector<Field> out;
  for (auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

std::vector<std::string> string_list(const Value& v) {
  if (v.is_null()) return {};
  if (v.is_string()) return {v.get<std::string>()};
  std::vector<std::string> out;
  for (const auto& item : v) out.push_back(item.get<std::string>());
  return out;
}

}  // namespace stunt::recipe::detail
