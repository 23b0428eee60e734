// Nothing accepted and ignored: every field of every implemented modifier is read by the code
// that acts on it (or refuses its value), is a deprecated name that validate_recipe renames, or
// is inert and says why. ModifierRegistry::create throws InternalError when a given argument
// that the schema marks as acting is never read; these examples give every such field.
#include <map>
#include <set>

#include "stunt/core/error.h"
#include "stunt/recipe/recipe.h"
#include "stunt/recipe/registry.h"
#include "test_util.h"

namespace stunt::recipe {
namespace {

struct Example {
  std::string modifier;
  RecipeSyntax syntax;
  Value args;
  /// Set when the example's values are refused: the error must name this key.
  std::string refused_key;
};

Value json(const char* text) { return Value::parse(text); }

std::vector<Example> examples() {
  const auto L = RecipeSyntax::LlmCompressor;
  const auto S = RecipeSyntax::SparseML;
  const char* mixin = R"({"targets": ["Linear"], "ignore": ["lm_head"], "scheme": "W8A8",
      "weight_observer": "minmax", "input_observer": "minmax", "bypass_divisibility_checks": false,
      "start": -1, "end": -1, "update": null})";
  const char* groups = R"({"config_groups": {"g": {"targets": ["Linear"],
      "weights": {"num_bits": 4, "group_size": 32}}}, "observer": {"weights": "mse"}})";
  const char* output_observer = R"({"scheme": "W4A16", "output_observer": "minmax"})";
  const char* kv_cache = R"({"scheme": "W4A16", "kv_cache_scheme": {"num_bits": 8}})";
  // llm-compressor's schedule fields, at their one-shot values (read by the schedule check).
  const char* oneshot = R"({"start": -1, "end": -1, "update": null})";
  auto with = [](const char* base, const char* extra) {
    Value v = Value::parse(base);
    v.update(Value::parse(extra));
    return v;
  };
  return {
      {"QuantizationModifier", L, json(mixin)},
      {"QuantizationModifier", L, json(groups)},
      {"QuantizationModifier", L, json(output_observer), "output_observer"},
      {"QuantizationModifier", L, json(kv_cache), "kv_cache_scheme"},
      {"GPTQModifier", L, json(output_observer), "output_observer"},
      {"GPTQModifier", L, json(kv_cache), "kv_cache_scheme"},
      {"AWQModifier", L, json(output_observer), "output_observer"},
      {"AWQModifier", L, json(kv_cache), "kv_cache_scheme"},
      {"AWQModifier", L, json(groups)},
      {"QuantizationModifier", L, json(R"({"scheme": "W4A16", "start": 0})"), "start"},
      // Quantization-aware training's own fields: refused one-shot (train stages read them).
      {"QuantizationModifier", L, json(R"({"scheme": "W4A16", "learnable_scales": true,
                "disable_quantization_observer_epoch": 1})"),
       "learnable_scales"},
      {"GPTQModifier", L, json(mixin)},
      {"GPTQModifier", L,
       json(R"({"scheme": "W4A16", "block_size": 64, "dampening_frac": 0.02, "actorder": "weight",
                "hessian_dtype": "float64"})")},
      {"GPTQModifier", L, json(groups)},
      {"AWQModifier", L, json(R"({"mappings": [{"smooth_layer": "re:.*input_layernorm",
                              "balance_layers": ["re:.*q_proj"]}],
                "duo_scaling": "both", "n_grid": 10})")},
      {"AWQModifier", L, json(mixin)},
      {"AWQModifier", L, json(R"({"ignore": ["lm_head"]})"), "ignore"},
      {"SmoothQuantModifier", L,
       json(R"({"smoothing_strength": 0.8, "algorithm": "smoothquant", "ignore": ["lm_head"],
                "mappings": [[["re:.*q_proj"], "re:.*input_layernorm"]],
                "num_calibration_steps": 4, "start": -1, "end": -1, "update": -1})")},
      {"LogarithmicEqualizationModifier", L,
       with(oneshot, R"({"smoothing_strength": 0.8, "ignore": ["lm_head"],
                "num_calibration_steps": 4,
                "mappings": [[["re:.*q_proj"], "re:.*input_layernorm"]]})")},
      {"SparseGPTModifier", L,
       with(oneshot, R"({"sparsity": 0.5, "mask_structure": "2:4", "targets": ["re:.*mlp.*"],
                "ignore": ["lm_head"], "block_size": 64, "dampening_frac": 0.02,
                "preserve_sparsity_mask": true})")},
      {"SparseGPTModifier", L,
       json(R"({"sparsity": 0.5, "sparsity_profile": "owl", "owl_m": 5, "owl_lmbda": 0.08})"),
       "sparsity_profile"},
      {"WandaPruningModifier", L,
       with(oneshot, R"({"sparsity": [0.5], "mask_structure": "unstructured",
                "targets": ["Linear"], "ignore": ["lm_head"]})")},
      {"WandaPruningModifier", L,
       json(R"({"sparsity": 0.5, "sparsity_profile": "owl", "owl_m": 5, "owl_lmbda": 0.08})"),
       "sparsity_profile"},
      {"MagnitudePruningModifier", L,
       json(R"({"params": ["re:.*mlp.*"], "init_sparsity": 0.0, "final_sparsity": 0.5,
                "global_sparsity": true, "inter_func": "linear", "mask_type": "unstructured",
                "start": null, "end": -1, "update": -1})")},
      {"GMPruningModifier", L,
       json(R"({"targets": ["Linear"], "init_sparsity": 0.1, "final_sparsity": 0.5,
                "update_scheduler": "cubic", "scheduler_args": {}, "mask_structure": "2:4",
                "leave_enabled": false, "apply_globally": false, "score_type": "magnitude",
                "start": -1, "end": -1, "update": null})")},
      {"MagnitudePruningModifier", L,
       json(R"({"targets": ["Linear"], "init_sparsity": 0.1, "final_sparsity": 0.5,
                "update_scheduler": "cubic", "scheduler_args": {}, "mask_structure": "2:4",
                "leave_enabled": true, "apply_globally": false, "phased": false,
                "score_type": "magnitude", "start_epoch": 0, "end_epoch": 0,
                "update_frequency": 1})")},
      {"GMPruningModifier", S,
       json(R"({"params": "__ALL_PRUNABLE__", "init_sparsity": 0.05, "final_sparsity": 0.5,
                "inter_func": "cubic", "mask_type": "unstructured", "global_sparsity": true,
                "start_epoch": 1, "end_epoch": 1})"),
       "start_epoch"},
      {"GMPruningModifier", S,
       json(R"({"params": ["re:.*weight"], "init_sparsity": 0.05, "final_sparsity": 0.5,
                "inter_func": "linear", "start_epoch": 0, "end_epoch": 10,
                "update_frequency": 0.5})"),
       "end_epoch"},
      {"GMPruningModifier", L,
       json(R"({"targets": ["Linear"], "init_sparsity": 0.0, "final_sparsity": 0.5,
                "phased": true})"),
       "phased"},
      {"LayerPruningModifier", L,
       with(oneshot, R"({"layers": [1, "model.layers.2"], "stack": null})")},
      {"LayerPruningModifier", S,
       json(R"({"keep_every": 2, "keep_last": true, "start_epoch": -1, "end_epoch": -1,
                "update_frequency": 1})")},
      {"LayerPruningModifier", L, with(oneshot, R"({"keep_layers": 3})")},
      {"LayerPruningModifier", L, with(oneshot, R"({"keep_layers": 3, "keep_every": 2})"),
       "keep_layers"},
      {"HeadPruningModifier", L, with(oneshot, R"({"sparsity": 0.25, "importance": "taylor"})")},
      {"HeadPruningModifier", L, json(R"({"num_heads": 1})")},
      {"ChannelPruningModifier", L,
       with(oneshot, R"({"sparsity": 0.25, "importance": "activation"})")},
      {"ChannelPruningModifier", L, json(R"({"num_channels": 2})")},
      {"ConstantPruningModifier", L, with(oneshot, R"({"targets": ["re:.*mlp.*"]})")},
      {"ConstantPruningModifier", S,
       json(R"({"params": ["re:.*weight"], "start_epoch": 0, "end_epoch": -1,
                "update_frequency": 1})")},
  };
}

TEST(SchemaFields, EveryActingFieldOfEveryImplementedModifierIsInAnExample) {
  std::map<std::string, std::set<std::string>> covered;  // modifier + syntax -> keys
  for (const Example& e : examples()) {
    for (auto it = e.args.begin(); it != e.args.end(); ++it) {
      covered[e.modifier + syntax_name(e.syntax)].insert(it.key());
    }
  }
  for (const ModifierInfo& info : ModifierRegistry::builtin().all()) {
    if (!info.factory) continue;
    for (const auto syntax : {RecipeSyntax::LlmCompressor, RecipeSyntax::SparseML}) {
      if (ModifierRegistry::builtin().find(info.name, syntax) != &info) continue;
      // A general entry serves both syntaxes; its examples may use either.
      std::set<std::string> keys = covered[info.name + syntax_name(RecipeSyntax::LlmCompressor)];
      const auto& sparseml = covered[info.name + syntax_name(RecipeSyntax::SparseML)];
      keys.insert(sparseml.begin(), sparseml.end());
      for (const Field& f : info.schema.fields()) {
        if (f.use != FieldUse::Acts) {
          EXPECT_FALSE(f.note.empty()) << info.name << "." << f.name << " needs its note";
          continue;
        }
        EXPECT_TRUE(keys.count(f.name))
            << info.name << "." << f.name
            << " acts, but no example here gives it: add one, so that this test sees it read";
      }
    }
  }
}

TEST(SchemaFields, EveryGivenActingFieldIsReadOrRefusedByName) {
  for (const Example& e : examples()) {
    ModifierSpec spec{e.modifier, "test", "stage.test_modifiers." + e.modifier, e.args};
    SCOPED_TRACE(e.modifier + " " + e.args.dump());
    std::vector<std::string> notes;
    ModifierRegistry::builtin().normalize(spec, e.syntax, "fields.yaml", notes);
    if (e.refused_key.empty()) {
      try {
        ModifierRegistry::builtin().create(spec, e.syntax, "fields.yaml");
      } catch (const InternalError& err) {
        ADD_FAILURE() << err.what();
      }
    } else {
      try {
        ModifierRegistry::builtin().create(spec, e.syntax, "fields.yaml");
        ADD_FAILURE() << "expected a refusal naming " << e.refused_key;
      } catch (const InternalError& err) {
        ADD_FAILURE() << err.what();
      } catch (const Error& err) {
        EXPECT_NE(std::string(err.what()).find(e.refused_key), std::string::npos) << err.what();
      }
    }
  }
}

// The check itself can fail: a field that no code reads is caught.
TEST(SchemaFields, AnUnreadArgumentIsAnInternalError) {
  ModifierRegistry registry;
  registry.add({"ForgetfulModifier",
                "pruning",
                "reads nothing",
                ArgSchema::object({field("sparsity", ArgSchema::number())}),
                {},
                [](const ModifierSpec& spec) { return std::make_unique<Modifier>(spec); }});
  ModifierSpec spec{"ForgetfulModifier", "", "s.m.ForgetfulModifier", json(R"({"sparsity": 0.5})")};
  EXPECT_THROW_WITH(registry.create(spec, RecipeSyntax::LlmCompressor, "r.yaml"), InternalError,
                    "s.m.ForgetfulModifier.sparsity: ForgetfulModifier accepts this argument but "
                    "no code reads it");
}

TEST(SchemaFields, DeprecatedKeysAreRenamedWithOneWarningAndInertKeysSayWhy) {
  Recipe r = parse_recipe(R"(
s_stage:
  m_modifiers:
    SparseGPTModifier: {sparsity: 0.5, percdamp: 0.05, sequential_update: true}
)",
                          "old.yaml");
  validate_recipe(r, ModifierRegistry::builtin());
  const Value& args = r.stages[0].modifiers[0].args;
  EXPECT_FALSE(args.contains("percdamp"));
  EXPECT_EQ(args["dampening_frac"], 0.05);
  ASSERT_EQ(r.notes.size(), 2u);
  EXPECT_NE(r.notes[0].find("'percdamp' is deprecated; it is read as 'dampening_frac'"),
            std::string::npos)
      << r.notes[0];
  EXPECT_NE(r.notes[1].find("sequential_update: has no effect in Stunt: llm-compressor "
                            "deprecated it"),
            std::string::npos)
      << r.notes[1];
  Recipe both = parse_recipe(
      "s_stage:\n  m_modifiers:\n    SparseGPTModifier: {sparsity: 0.5, percdamp: 0.05, "
      "dampening_frac: 0.01}\n",
      "both.yaml");
  EXPECT_THROW_WITH(validate_recipe(both, ModifierRegistry::builtin()), RecipeError,
                    "'percdamp' is the old name of 'dampening_frac', which is given too");
}

TEST(SchemaFields, GlobalMagnitudePruningModifierIsGmpWithOneThreshold) {
  Recipe r = parse_recipe(R"(
modifiers:
  - !GlobalMagnitudePruningModifier
    params: __ALL_PRUNABLE__
    init_sparsity: 0.05
    final_sparsity: 0.8
    start_epoch: 0.0
    end_epoch: 0.0
)",
                          "global.yaml");
  validate_recipe(r, ModifierRegistry::builtin());
  EXPECT_EQ(r.stages[0].modifiers[0].type, "GMPruningModifier");
  EXPECT_EQ(r.stages[0].modifiers[0].args["global_sparsity"], true);
  Recipe conflicting = parse_recipe(
      "modifiers:\n  - !GlobalMagnitudePruningModifier\n    params: __ALL_PRUNABLE__\n"
      "    init_sparsity: 0.0\n    final_sparsity: 0.5\n    global_sparsity: false\n",
      "conflict.yaml");
  EXPECT_THROW_WITH(validate_recipe(conflicting, ModifierRegistry::builtin()), RecipeError,
                    "GlobalMagnitudePruningModifier means GMPruningModifier with global_sparsity");
}

}  // namespace
}  // namespace stunt::recipe
