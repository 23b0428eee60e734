#include "stunt/recipe/recipe.h"

#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>

#include "detail/recipe_parsing.h"
#include "stunt/core/logging.h"
#include "stunt/core/strings.h"
#include "stunt/io/json_keys.h"
#include "stunt/recipe/registry.h"

namespace stunt::recipe {
namespace detail {
namespace {

// Recipes are small; anything bigger is not a recipe, and the caps keep hostile input
// (alias bombs, deep nesting) from exhausting memory or stack.
constexpr size_t kMaxRecipeBytes = 16 * 1024 * 1024;
constexpr size_t kMaxNodes = 1'000'000;
constexpr int kMaxDepth = 64;

// YAML 1.2 core schema numbers, checked by hand: libstdc++'s std::regex recurses per
// character and can exhaust the stack on long hostile scalars.
size_t skip_digits(const std::string& t, size_t i) {
  while (i < t.size() && t[i] >= '0' && t[i] <= '9') ++i;
  return i;
}

bool is_yaml_int(const std::string& t) {
  size_t i = (!t.empty() && (t[0] == '-' || t[0] == '+')) ? 1 : 0;
  const size_t end = skip_digits(t, i);
  return end > i && end == t.size();
}

bool is_yaml_float(const std::string& t) {
  size_t i = (!t.empty() && (t[0] == '-' || t[0] == '+')) ? 1 : 0;
  size_t end = skip_digits(t, i);
  bool digits = end > i;
  if (end < t.size() && t[end] == '.') {
    const size_t frac = skip_digits(t, end + 1);
    digits |= frac > end + 1;
    end = frac;
  }
  if (!digits) return false;
  if (end < t.size() && (t[end] == 'e' || t[end] == 'E')) {
    size_t e = end + 1;
    if (e < t.size() && (t[e] == '-' || t[e] == '+')) ++e;
    const size_t exp_end = skip_digits(t, e);
    if (exp_end == e) return false;
    end = exp_end;
  }
  return end == t.size();
}

// Deeply nested JSON is no recipe; the limit keeps later recursive passes off the stack.
void check_depth(const Value& v, const std::string& source, int depth) {
  if (depth > kMaxDepth) fail(source, "", "recipe is nested more than ", kMaxDepth, " levels");
  if (v.is_structured()) {
    for (const auto& item : v) check_depth(item, source, depth + 1);
  }
}

struct Converter {
  const std::string& source;
  size_t nodes = 0;

  Value scalar(const YAML::Node& node) {
    const std::string& text = node.Scalar();
    const std::string& tag = node.Tag();
    if (tag == "!" || tag == "tag:yaml.org,2002:str") return text;  // quoted: always a string
    if (text == "null" || text == "Null" || text == "NULL" || text == "~" || text.empty()) {
      return nullptr;
    }
    if (text == "true" || text == "True" || text == "TRUE") return true;
    if (text == "false" || text == "False" || text == "FALSE") return false;
    if (is_yaml_int(text)) {
      try {
        return std::stoll(text);
      } catch (const std::exception&) {
        return std::strtod(text.c_str(), nullptr);  // beyond int64: a double
      }
    }
    // strtod, unlike std::stod, gives +-inf for out-of-range values instead of throwing; the
    // argument schemas then report them as out of range.
    if (is_yaml_float(text)) return std::strtod(text.c_str(), nullptr);
    if (text == ".inf" || text == "+.inf" || text == ".Inf") return HUGE_VAL;
    if (text == "-.inf" || text == "-.Inf") return -HUGE_VAL;
    return text;
  }

  Value convert(const YAML::Node& node, const std::string& path, int depth) {
    if (++nodes > kMaxNodes) fail(source, path, "recipe has too many nodes (aliases expanding?)");
    if (depth > kMaxDepth) fail(source, path, "recipe is nested more than ", kMaxDepth, " levels");
    const std::string& tag = node.Tag();
    const bool custom_tag = tag.size() > 1 && tag[0] == '!' && tag.rfind("!!", 0) != 0;
    Value out;
    switch (node.Type()) {
      case YAML::NodeType::Undefined:
      case YAML::NodeType::Null:
        out = custom_tag ? Value::object() : Value(nullptr);
        break;
      case YAML::NodeType::Scalar:
        if (custom_tag) fail(source, path, "the tag ", tag, " must label a mapping of arguments");
        return scalar(node);
      case YAML::NodeType::Sequence: {
        if (custom_tag) fail(source, path, "the tag ", tag, " must label a mapping of arguments");
        out = Value::array();
        size_t i = 0;
        for (const auto& item : node)
          out.push_back(convert(item, str(path, "[", i++, "]"), depth + 1));
        return out;
      }
      case YAML::NodeType::Map: {
        out = Value::object();
        for (const auto& item : node) {
          if (!item.first.IsScalar()) fail(source, path, "mapping keys must be plain strings");
          const std::string key = item.first.Scalar();
          if (out.contains(key)) {
            fail(source, join_path(path, key), "duplicate key; each key may appear once");
          }
          out[key] = convert(item.second, join_path(path, key), depth + 1);
        }
        break;
      }
    }
    if (custom_tag) out[kTagKey] = tag.substr(1);
    return out;
  }
};

}  // namespace

bool ends_with(std::string_view text, std::string_view suffix) {
  return text.size() >= suffix.size() &&
         text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string version_text(const Value& value, const std::string& source) {
  if (value.is_string()) return value.get<std::string>();
  if (value.is_number()) return dump_text(value);
  fail(source, "version", "expected a version string such as \"1.1.0\", found ", value.type_name());
}

bool contains(std::string_view text, std::string_view part) {
  return text.find(part) != std::string_view::npos;
}

Value parse_document(std::string_view text, const std::string& source) {
  if (!is_valid_utf8(text)) fail(source, "", "the recipe is not valid UTF-8 text");
  if (text.size() > kMaxRecipeBytes) {
    fail(source, "", "file is ", text.size(), " bytes; recipes are at most ", kMaxRecipeBytes);
  }
  const size_t first = text.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos) fail(source, "", "the recipe is empty");
  if (text[first] == '{' || text[first] == '[') {
    if (const auto key = io::find_duplicate_json_key(text)) {
      fail(source, printable(*key), "duplicate key; each key may appear once");
    }
    try {
      Value parsed = Value::parse(text.begin(), text.end());
      check_depth(parsed, source, 0);
      return parsed;
    } catch (const Value::exception& e) {
      fail(source, "", "not valid JSON (", printable(e.what()), ")");
    }
  }
  YAML::Node root;
  try {
    root = YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    fail(source, "", "not valid YAML: ", printable(e.what()));
  }
  Converter converter{source};
  return converter.convert(root, "", 0);
}

}  // namespace detail

const char* syntax_name(RecipeSyntax syntax) {
  return syntax == RecipeSyntax::SparseML ? "sparseml" : "llm-compressor";
}

RecipeArgs parse_recipe_args(std::string_view text) {
  RecipeArgs out;
  size_t begin = 0;
  while (begin <= text.size()) {
    size_t end = text.find(',', begin);
    if (end == std::string_view::npos) end = text.size();
    const std::string item(text.substr(begin, end - begin));
    const size_t eq = item.find('=');
    std::string name = eq == std::string::npos ? "" : item.substr(0, eq);
    name.erase(0, name.find_first_not_of(" \t"));
    name.erase(name.find_last_not_of(" \t") + 1);
    STUNT_CHECK_AS(ValueError, !name.empty() && eq + 1 < item.size(), "--recipe-args: '", item,
                   "' is not name=value; write e.g. --recipe-args sparsity=0.5,num_epochs=2");
    const Value value = detail::parse_document(item.substr(eq + 1), "--recipe-args " + name);
    STUNT_CHECK_AS(ValueError, value.is_primitive() && !value.is_null(), "--recipe-args: ", name,
                   " must be a number, true/false or text, found '", item.substr(eq + 1), "'");
    STUNT_CHECK_AS(ValueError, !out.count(name), "--recipe-args: ", name, " is given twice");
    out[name] = value;
    begin = end + 1;
  }
  return out;
}

Recipe parse_recipe(std::string_view text, const std::string& source,
                    const RecipeArgs& recipe_args) {
  const Value root = detail::parse_document(text, source);
  if (!root.is_object()) {
    detail::fail(source, "",
                 "a recipe must be a mapping of stages (llm-compressor: "
                 "quant_stage: {quant_modifiers: {...}}) or of variables and modifier lists "
                 "(SparseML), found ",
                 root.type_name());
  }
  return detail::is_sparseml_syntax(root) ? detail::parse_sparseml(root, source, recipe_args)
                                          : detail::parse_llmcompressor(root, source, recipe_args);
}

namespace {

// SparseML recipes may live in a markdown file's front matter: the lines between the first
// two '---' (or '+++') lines.
std::string front_matter(const std::string& text, const std::string& source) {
  std::istringstream lines(text);
  std::string line, body;
  int delimiters = 0;
  while (std::getline(lines, line) && delimiters < 2) {
    const auto first = line.find_first_not_of(" \t\r");
    const auto last = line.find_last_not_of(" \t\r");
    const std::string trimmed =
        first == std::string::npos ? "" : line.substr(first, last - first + 1);
    if (trimmed == "---" || trimmed == "+++") {
      ++delimiters;
    } else if (delimiters == 1) {
      body += line + "\n";
    }
  }
  if (delimiters < 2) {
    throw RecipeError(str(source,
                          ": a markdown recipe needs its YAML between two '---' lines "
                          "(front matter)"));
  }
  return body;
}

}  // namespace

Recipe parse_recipe_file(const std::filesystem::path& path, const RecipeArgs& recipe_args) {
  std::ifstream in(path, std::ios::binary);
  STUNT_CHECK_AS(IoError, in.good(), "cannot open recipe '", path.string(), "'");
  std::stringstream buffer;
  buffer << in.rdbuf();
  std::string text = buffer.str();
  if (path.extension() == ".md") text = front_matter(text, path.string());
  return parse_recipe(text, path.string(), recipe_args);
}

Value Recipe::to_value() const {
  Value out = Value::object();
  if (!version.empty()) out["version"] = version;
  for (const auto& stage : stages) {
    Value s = Value::object();
    if (!stage.run_type.empty()) s["run_type"] = stage.run_type;
    for (const auto& m : stage.modifiers) {
      std::string group = (m.group.empty() ? "default" : m.group) + "_modifiers";
      // llm-compressor's syntax cannot repeat a modifier in one group: number the repeats.
      for (int i = 1; s.contains(group) && s[group].contains(m.type); ++i) {
        group = str(m.group.empty() ? "default" : m.group, "_", i, "_modifiers");
      }
      s[group][m.type] = m.args;
    }
    out[detail::ends_with(stage.name, "_stage") ? stage.name : stage.name + "_stage"] = s;
  }
  return out;
}

namespace {

void emit(YAML::Emitter& out, const Value& v) {
  if (v.is_object()) {
    out << YAML::BeginMap;
    for (auto it = v.begin(); it != v.end(); ++it) {
      out << YAML::Key << it.key() << YAML::Value;
      emit(out, it.value());
    }
    out << YAML::EndMap;
  } else if (v.is_array()) {
    out << YAML::Flow << YAML::BeginSeq;
    for (const auto& item : v) emit(out, item);
    out << YAML::EndSeq;
  } else if (v.is_string()) {
    out << YAML::DoubleQuoted << v.get<std::string>();
  } else if (v.is_null()) {
    out << YAML::Null;
  } else {
    out << detail::dump_text(v);
  }
}

}  // namespace

std::string Recipe::to_yaml() const {
  YAML::Emitter out;
  emit(out, to_value());
  return std::string(out.c_str()) + "\n";
}

namespace {

bool gives_scheme(const Value& args) {
  return (args.contains("scheme") && !args["scheme"].is_null()) ||
         (args.contains("config_groups") && !args["config_groups"].is_null());
}

/// llm-compressor attaches a QuantizationModifier's scheme to the model, and a later
/// GPTQModifier without a scheme of its own quantizes those layers with it (without its default
/// act-order). Here the GPTQModifier takes the scheme (and targets, ignore and observers) into its
/// own arguments, and the QuantizationModifier, whose rounding GPTQ would redo, leaves the run.
void inherit_gptq_schemes(Recipe& recipe) {
  static const char* kSchemeKeys[] = {"scheme",          "config_groups",
                                      "targets",         "ignore",
                                      "weight_observer", "input_observer",
                                      "output_observer", "observer",
                                      "kv_cache_scheme", "bypass_divisibility_checks"};
  const ModifierSpec* quantizer = nullptr;
  size_t quantizer_stage = 0, quantizer_index = 0;
  for (size_t s = 0; s < recipe.stages.size(); ++s) {
    for (size_t i = 0; i < recipe.stages[s].modifiers.size(); ++i) {
      ModifierSpec& m = recipe.stages[s].modifiers[i];
      if (m.type == "QuantizationModifier" && gives_scheme(m.args)) {
        quantizer = &m;
        quantizer_stage = s;
        quantizer_index = i;
        continue;
      }
      if (m.type != "GPTQModifier" || gives_scheme(m.args) || quantizer == nullptr) continue;
      for (const char* key : kSchemeKeys) {
        if (!quantizer->args.contains(key)) continue;
        if (m.args.contains(key) && m.args[key] != quantizer->args[key]) {
          detail::fail(recipe.source, detail::join_path(m.path, key),
                       "differs from the scheme's modifier ", quantizer->path,
                       ", whose scheme this GPTQModifier takes; give it in one place");
        }
        m.args[key] = quantizer->args[key];
      }
      // llm-compressor applies GPTQ's default act-order only to schemes GPTQ declares itself:
      // an inherited scheme keeps its own (none unless it says so). Measured with
      // benchmarks/llmcompressor_inherited_scheme.py.
      if (!m.args.contains("actorder")) m.args["actorder"] = nullptr;
      recipe.notes.push_back(str(recipe.source, ": ", m.path,
                                 ": GPTQModifier quantizes with the scheme of ", quantizer->path,
                                 " (as llm-compressor does); that modifier's "
                                 "round to nearest is superseded and does not run"));
      log::info(recipe.notes.back());
      auto& mods = recipe.stages[quantizer_stage].modifiers;
      mods.erase(mods.begin() + static_cast<std::ptrdiff_t>(quantizer_index));
      if (mods.empty()) {
        recipe.stages.erase(recipe.stages.begin() + static_cast<std::ptrdiff_t>(quantizer_stage));
      }
      return inherit_gptq_schemes(recipe);  // indices moved; look again
    }
  }
}

}  // namespace

void validate_recipe(Recipe& recipe, const ModifierRegistry& registry) {
  for (auto& stage : recipe.stages) {
    for (auto& m : stage.modifiers)
      registry.normalize(m, recipe.syntax, recipe.source, recipe.notes);
  }
  inherit_gptq_schemes(recipe);
  bool quantizer_pending_awq = false;
  std::string awq_path;
  for (const auto& stage : recipe.stages) {
    for (const auto& m : stage.modifiers) {
      registry.validate(m, recipe.syntax, recipe.source);
      if (m.type == "AWQModifier" && !gives_scheme(m.args)) {
        quantizer_pending_awq = true;
        awq_path = m.path;
      }
      if (m.type == "QuantizationModifier" || m.type == "GPTQModifier" ||
          m.type == "AutoRoundModifier") {
        quantizer_pending_awq = false;
      }
    }
  }
  if (quantizer_pending_awq) {
    detail::fail(recipe.source, awq_path,
                 "AWQModifier only searches scales; add a "
                 "QuantizationModifier or GPTQModifier after it (or give AWQModifier a scheme)");
  }
}

Recipe load_recipe(const std::filesystem::path& path, const RecipeArgs& recipe_args) {
  Recipe recipe = parse_recipe_file(path, recipe_args);
  validate_recipe(recipe, ModifierRegistry::builtin());
  return recipe;
}

const ModifierSpec* first_weight_quantizer(const Recipe& recipe) {
  for (const Stage& stage : recipe.stages) {
    for (const ModifierSpec& spec : stage.modifiers) {
      if (spec.type == "QuantizationModifier" || spec.type == "GPTQModifier" ||
          spec.type == "AWQModifier") {
        return &spec;
      }
    }
  }
  return nullptr;
}

}  // namespace stunt::recipe
