#include "stunt/recipe/registry.h"

#include <algorithm>
#include <set>

#include "detail/oneshot_schedule.h"
#include "detail/recipe_parsing.h"
#include "stunt/core/logging.h"

namespace stunt::recipe {

void ModifierRegistry::add(ModifierInfo info) {
  for (const auto& e : entries_) {
    STUNT_ASSERT(!(e.name == info.name && e.syntax == info.syntax), "modifier '", info.name,
                 "' registered twice");
  }
  entries_.push_back(std::move(info));
}

void ModifierRegistry::add_alias(ModifierAlias alias) {
  STUNT_ASSERT(find(alias.target, alias.syntax.value_or(RecipeSyntax::LlmCompressor)) != nullptr,
               "alias '", alias.name, "' names unknown modifier '", alias.target, "'");
  aliases_.push_back(std::move(alias));
}

const ModifierInfo* ModifierRegistry::find(const std::string& name, RecipeSyntax syntax) const {
  const ModifierInfo* general = nullptr;
  for (const auto& e : entries_) {
    if (e.name != name) continue;
    if (e.syntax == syntax) return &e;
    if (!e.syntax) general = &e;
  }
  return general;
}

std::string ModifierRegistry::known_names() const {
  std::set<std::string> names;
  for (const auto& e : entries_) names.insert(e.name);
  for (const auto& a : aliases_) names.insert(a.name);
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

std::string ModifierRegistry::unknown_modifier_message(const std::string& name) const {
  std::vector<std::string> names;
  for (const auto& e : entries_) names.push_back(e.name);
  for (const auto& a : aliases_) names.push_back(a.name);
  const std::string hint = closest_match(name, names);
  return str("unknown modifier '", name, "'",
             hint.empty() ? "" : str("; did you mean '", hint, "'?"), " (known: ", known_names(),
             ")");
}

void ModifierRegistry::normalize(ModifierSpec& spec, RecipeSyntax syntax, const std::string& source,
                                 std::vector<std::string>& notes) const {
  for (const ModifierAlias& alias : aliases_) {
    if (alias.name != spec.type || (alias.syntax && *alias.syntax != syntax)) continue;
    for (auto it = alias.implied_args.begin(); it != alias.implied_args.end(); ++it) {
      if (spec.args.contains(it.key()) && spec.args[it.key()] != it.value()) {
        detail::fail(source, detail::join_path(spec.path, it.key()), alias.name, " means ",
                     alias.target, " with ", it.key(), ": ", detail::dump_text(it.value()),
                     "; remove this key or name ", alias.target, " instead");
      }
      spec.args[it.key()] = it.value();
    }
    std::string implied;
    for (auto it = alias.implied_args.begin(); it != alias.implied_args.end(); ++it) {
      implied +=
          str(implied.empty() ? " with " : ", ", it.key(), ": ", detail::dump_text(it.value()));
    }
    notes.push_back(
        str(source, ": ", spec.path, ": ", alias.name, " runs as ", alias.target, implied));
    log::info(notes.back());
    spec.type = alias.target;
    break;
  }
  const ModifierInfo* info = find(spec.type, syntax);
  if (info == nullptr) detail::fail(source, spec.path, unknown_modifier_message(spec.type));
  if (!spec.args.is_object()) return;  // validate() reports it
  Value renamed = Value::object();
  for (auto it = spec.args.begin(); it != spec.args.end(); ++it) {
    const auto& fields = info->schema.fields();
    const auto f = std::find_if(fields.begin(), fields.end(),
                                [&](const Field& x) { return x.name == it.key(); });
    const std::string path = detail::join_path(spec.path, it.key());
    if (f != fields.end() && f->use == FieldUse::Renamed) {
      if (spec.args.contains(f->note)) {
        detail::fail(source, path, "'", it.key(), "' is the old name of '", f->note,
                     "', which is given too; keep only '", f->note, "'");
      }
      const std::string note =
          str(source, ": ", path, ": '", it.key(), "' is deprecated; it is read as '", f->note,
              "' (same meaning): rename it");
      log::warn(note);
      notes.push_back("warning: " + note);
      renamed[f->note] = it.value();
      continue;
    }
    if (f != fields.end() && f->use == FieldUse::Inert && !it.value().is_null()) {
      const std::string note = str(source, ": ", path, ": has no effect in Stunt: ", f->note);
      log::warn(note);
      notes.push_back("warning: " + note);
    }
    renamed[it.key()] = it.value();
  }
  spec.args = std::move(renamed);
}

void ModifierRegistry::validate(const ModifierSpec& spec, RecipeSyntax syntax,
                                const std::string& source) const {
  const ModifierInfo* info = find(spec.type, syntax);
  if (info == nullptr) detail::fail(source, spec.path, unknown_modifier_message(spec.type));
  info->schema.validate(spec.args, spec.path, source);
  for (const auto& check : info->cross_checks) {
    const std::string problem = check(spec.args);
    if (!problem.empty()) detail::fail(source, spec.path, problem);
  }
}

std::unique_ptr<Modifier> ModifierRegistry::create(const ModifierSpec& spec, RecipeSyntax syntax,
                                                   const std::string& source) const {
  validate(spec, syntax, source);
  const ModifierInfo* info = find(spec.type, syntax);
  if (!info->factory) {
    std::vector<std::string> implemented;
    for (const auto& e : entries_) {
      if (e.factory) implemented.push_back(e.name);
    }
    std::string list;
    for (const auto& n : implemented) list += (list.empty() ? "" : ", ") + n;
    throw NotImplementedError(str(source, ": ", spec.path, ": ", spec.type, " (", info->summary,
                                  ") is not implemented yet in Stunt; the recipe is valid, but it "
                                  "cannot run until this modifier lands (implemented now: ",
                                  list.empty() ? "none" : list, ")"));
  }
  ModifierSpec located = spec;
  located.source = source;
  located.read_keys.clear();
  detail::check_oneshot_schedule(located);
  std::unique_ptr<Modifier> modifier = info->factory(located);
  // Nothing accepted and ignored: every given argument that the schema says acts was read.
  for (auto it = spec.args.begin(); it != spec.args.end(); ++it) {
    const auto& fields = info->schema.fields();
    const auto f = std::find_if(fields.begin(), fields.end(),
                                [&](const Field& x) { return x.name == it.key(); });
    if (f == fields.end() || f->use != FieldUse::Acts) continue;
    if (located.read_keys.count(it.key()) || modifier->spec().read_keys.count(it.key())) continue;
    throw InternalError(str(located.where(), ".", it.key(), ": ", spec.type,
                            " accepts this argument but no code reads it; please report this "
                            "(and remove the argument to run meanwhile)"));
  }
  return modifier;
}

const ModifierRegistry& ModifierRegistry::builtin() {
  static const ModifierRegistry registry = [] {
    ModifierRegistry r;
    register_quantization_modifiers(r);
    register_pruning_modifiers(r);
    register_distillation_modifiers(r);
    register_training_modifiers(r);
    return r;
  }();
  return registry;
}

}  // namespace stunt::recipe
