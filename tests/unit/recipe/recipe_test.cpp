#include "stunt/recipe/recipe.h"

#include <set>

#include "stunt/core/error.h"
#include "stunt/recipe/oneshot.h"
#include "stunt/recipe/registry.h"
#include "test_util.h"

namespace stunt::recipe {
namespace {

namespace fs = std::filesystem;

Recipe parse_and_validate(const std::string& text) {
  Recipe r = parse_recipe(text, "test.yaml");
  validate_recipe(r, ModifierRegistry::builtin());
  return r;
}

TEST(Recipe, LlmCompressorStagesBecomeStagesAndModifiers) {
  const Recipe r = parse_and_validate(R"(
sparsity_stage:
  run_type: oneshot
  sparsity_modifiers:
    SparseGPTModifier: {sparsity: 0.5, mask_structure: "2:4", targets: [Linear]}
quant_stage:
  quant_modifiers:
    GPTQModifier: {scheme: W4A16, ignore: [lm_head]}
)");
  EXPECT_EQ(r.syntax, RecipeSyntax::LlmCompressor);
  ASSERT_EQ(r.stages.size(), 2u);
  EXPECT_EQ(r.stages[0].name, "sparsity");
  EXPECT_EQ(r.stages[0].run_type, "oneshot");
  const auto& gptq = r.stages[1].modifiers.at(0);
  EXPECT_EQ(gptq.type, "GPTQModifier");
  EXPECT_EQ(gptq.group, "quant");
  EXPECT_EQ(gptq.path, "quant_stage.quant_modifiers.GPTQModifier");
  EXPECT_EQ(gptq.args["scheme"], "W4A16");
}

TEST(Recipe, JsonAndYamlGiveTheSameRecipe) {
  const Recipe yaml = parse_and_validate(
      "q_stage:\n  q_modifiers:\n    QuantizationModifier: {scheme: FP8, targets: Linear}\n");
  const Recipe json = parse_and_validate(
      R"({"q_stage": {"q_modifiers": {"QuantizationModifier": {"scheme": "FP8", "targets": "Linear"}}}})");
  EXPECT_EQ(yaml.to_value(), json.to_value());
}

TEST(Recipe, QuotedYamlScalarsStayStrings) {
  const Recipe r = parse_recipe(
      "s_stage:\n  m_modifiers:\n    X: {a: \"1\", b: 1, c: 1.5, d: true, "
      "e: null, f: '2:4', g: 1e-3}\n",
      "t");
  const Value& args = r.stages[0].modifiers[0].args;
  EXPECT_TRUE(args["a"].is_string());
  EXPECT_TRUE(args["b"].is_number_integer());
  EXPECT_DOUBLE_EQ(args["c"].get<double>(), 1.5);
  EXPECT_TRUE(args["d"].is_boolean());
  EXPECT_TRUE(args["e"].is_null());
  EXPECT_EQ(args["f"], "2:4");
  EXPECT_DOUBLE_EQ(args["g"].get<double>(), 1e-3);  // YAML 1.2: a float, not a string
}

TEST(Recipe, OutOfRangeNumbersAreRangeErrorsNotCrashes) {
  EXPECT_THROW_WITH(parse_and_validate("p_stage:\n  p_modifiers:\n    SparseGPTModifier: "
                                       "{sparsity: 444444e4445}\n"),
                    RecipeError, "out of range");
  const Recipe r =
      parse_recipe("s_stage:\n  m_modifiers:\n    X: {a: " + std::string(400, '9') + "}\n", "t");
  EXPECT_TRUE(r.stages[0].modifiers[0].args["a"].is_number_float());
}

// The recipe fuzzer's find: a NUL inside a YAML key made the parser hand back a mapping whose
// JSON serialization threw from nlohmann (not a RecipeError) when it was echoed as `version`.
TEST(Recipe, VersionMustBeAStringOrNumber) {
  const char bytes[] = "version:\n .F p_muss\0_ntage:\ne: DU5A5i}\n";
  const std::string fuzzed(bytes, sizeof bytes - 1);
  EXPECT_THROW_WITH(parse_recipe(fuzzed, "fuzz.yaml"), RecipeError,
                    "fuzz.yaml: version: expected a version string");
  EXPECT_THROW_WITH(parse_recipe("version: [1, 1]\nversion_stage: {}\n", "v.yaml"), RecipeError,
                    "v.yaml: version: expected a version string such as \"1.1.0\", found array");
  const std::string stage =
      "q_stage:\n  q_modifiers:\n    QuantizationModifier: {scheme: W4A16, targets: [Linear]}\n";
  EXPECT_EQ(parse_recipe("version: 1.1\n" + stage, "v.yaml").version, "1.1");
  EXPECT_EQ(parse_recipe("version: \"1.1.0\"\n" + stage, "v.yaml").version, "1.1.0");
}

TEST(Recipe, SparseMLVariablesAndEvalAreResolved) {
  const Recipe r = parse_and_validate(R"(
num_epochs: 10
start: eval(end / 2)
end: eval(num_epochs - 2)
target: 0.8
pruning_modifiers:
  - !GMPruningModifier
    params: __ALL_PRUNABLE__
    init_sparsity: 0.05
    final_sparsity: eval(target * 0.9)
    start_epoch: eval(start)
    end_epoch: eval(end)
    update_frequency: eval(max(1, num_epochs // 4))
)");
  EXPECT_EQ(r.syntax, RecipeSyntax::SparseML);
  const Value& args = r.stages.at(0).modifiers.at(0).args;
  EXPECT_EQ(r.stages[0].modifiers[0].path, "pruning_modifiers[0]");
  EXPECT_EQ(r.stages[0].modifiers[0].group, "pruning");
  EXPECT_DOUBLE_EQ(args["final_sparsity"].get<double>(), 0.8 * 0.9);
  EXPECT_DOUBLE_EQ(args["start_epoch"].get<double>(), 4.0);
  EXPECT_EQ(args["end_epoch"], 8);
  EXPECT_EQ(args["update_frequency"], 2);
}

TEST(Recipe, SparseMLStagesSeeGlobalAndOwnVariables) {
  const Recipe r = parse_and_validate(R"(
g: 3
first_stage:
  n: eval(g * 2)
  modifiers:
    - !EpochRangeModifier
      start_epoch: 0
      end_epoch: eval(n + g)
)");
  ASSERT_EQ(r.stages.size(), 1u);
  EXPECT_EQ(r.stages[0].name, "first_stage");
  EXPECT_EQ(r.stages[0].modifiers[0].args["end_epoch"], 9);
  EXPECT_EQ(r.stages[0].modifiers[0].path, "first_stage.modifiers[0]");
}

TEST(Recipe, SparseMLQuantizationModifierUsesTheQatSchema) {
  EXPECT_NO_THROW(
      parse_and_validate("quantization_modifiers:\n  - !QuantizationModifier\n    start_epoch: 2\n"
                         "    freeze_bn_stats_epoch: 3\n"));
  // The same arguments under llm-compressor's syntax are unknown keys there.
  EXPECT_THROW_WITH(parse_and_validate("q_stage:\n  q_modifiers:\n    QuantizationModifier: "
                                       "{scheme: W8A8, freeze_bn_stats_epoch: 3}\n"),
                    RecipeError, "freeze_bn_stats_epoch: unknown key");
}

TEST(Recipe, ErrorsNameFilePathExpectationAndFix) {
  EXPECT_THROW_WITH(parse_and_validate("s_stage:\n  m_modifiers:\n    GPTQModifier:\n"
                                       "      scheme: W4A16\n      block_size: -3\n"),
                    RecipeError,
                    "test.yaml: s_stage.m_modifiers.GPTQModifier.block_size: -3 is out of range");
  EXPECT_THROW_WITH(parse_and_validate("s_stage:\n  m_modifiers:\n    GPTQModifier: {}\n"),
                    RecipeError, "add 'scheme'");
  EXPECT_THROW_WITH(parse_and_validate("s_stage:\n  m_modifiers:\n    NopeModifier: {}\n"),
                    RecipeError,
                    "known: AWQModifier, AttentionDistillationModifier, AutoRoundModifier");
  EXPECT_THROW_WITH(parse_and_validate("s_stage:\n  m_modifiers:\n    SparseGPTModifier: {}\n"),
                    RecipeError, "SparseGPTModifier.sparsity: missing");
}

TEST(Recipe, AwqWithoutAQuantizerAfterItIsRefused) {
  EXPECT_THROW_WITH(parse_and_validate("s_stage:\n  m_modifiers:\n    AWQModifier: {n_grid: 20}\n"),
                    RecipeError, "add a QuantizationModifier or GPTQModifier after it");
  EXPECT_NO_THROW(
      parse_and_validate("s_stage:\n  m_modifiers:\n    AWQModifier: {n_grid: 20}\n"
                         "    QuantizationModifier: {scheme: W4A16_ASYM}\n"));
}

TEST(Recipe, NormalizedFormParsesBackToTheSameRecipe) {
  for (const auto& entry : fs::directory_iterator(STUNT_RECIPES_DIR)) {
    const Recipe original = load_recipe(entry.path());
    Recipe again = parse_recipe(original.to_yaml(), "normalized");
    // SparseML's QAT QuantizationModifier keeps its own vocabulary, which llm-compressor's
    // syntax does not validate; every other recipe must validate again.
    if (original.syntax == RecipeSyntax::LlmCompressor) {
      validate_recipe(again, ModifierRegistry::builtin());
    }
    EXPECT_EQ(again.to_value(), original.to_value()) << entry.path();
  }
}

TEST(Recipe, ShippedRecipesCreateWhatIsImplementedAndRefuseTheRest) {
  // Every shipped recipe runs; a recipe that did not would have to say what is not implemented
  // yet, by name.
  const std::set<std::string> implemented = {"fp8-dynamic.json",
                                             "w4a16-gptq.yaml",
                                             "w8a8-smoothquant-gptq.yaml",
                                             "sparse.json",
                                             "sparse-2of4-w4a16.yaml",
                                             "shallow-decoder.yaml",
                                             "structured-w4a16.yaml",
                                             "w4a16-g64-gptq.yaml",
                                             "w4a16-g64-gptq-int8-head.yaml",
                                             "w8a8-dynamic.yaml",
                                             "w8a8-dynamic-with-head.yaml",
                                             "gmp-sparseml.yaml",
                                             "sparse-2of4-finetune-w4a16.yaml",
                                             "prune-finetune-prune.yaml",
                                             "distill-qat-sparseml.yaml"};
  size_t count = 0;
  for (const auto& entry : fs::directory_iterator(STUNT_RECIPES_DIR)) {
    const Recipe r = load_recipe(entry.path());
    size_t refused = 0;
    for (const ModifierCheck& check : check_oneshot(r)) {
      if (check.refusal.empty()) continue;
      ++refused;
      const bool says_why = check.refusal.find("is not implemented yet") != std::string::npos;
      EXPECT_TRUE(says_why) << entry.path() << ": " << check.refusal;
    }
    EXPECT_EQ(refused == 0, implemented.count(entry.path().filename().string()) > 0)
        << entry.path();
    ++count;
  }
  EXPECT_GE(count, 9u);
}

TEST(Recipe, MarkdownFrontMatterHoldsASparseMLRecipe) {
  test::TempDir dir;
  test::write_text(dir / "r.md",
                   "<!-- license -->\n---\nn: 2\nmodifiers:\n  - !EpochRangeModifier\n"
                   "    start_epoch: 0\n    end_epoch: eval(n)\n---\n# Notes\n");
  const Recipe r = load_recipe(dir / "r.md");
  EXPECT_EQ(r.stages[0].modifiers[0].args["end_epoch"], 2);
}

TEST(Recipe, FindsTheFirstWeightQuantizer) {
  const Recipe both = parse_recipe(
      "sparsity_stage:\n  sparsity_modifiers:\n    SparseGPTModifier: {sparsity: 0.5}\n"
      "quant_stage:\n  quant_modifiers:\n    SmoothQuantModifier: {}\n"
      "    GPTQModifier: {scheme: W4A16, targets: [Linear]}\n",
      "t.yaml");
  const ModifierSpec* found = first_weight_quantizer(both);
  ASSERT_NE(found, nullptr);
  EXPECT_EQ(found->type, "GPTQModifier");
  EXPECT_EQ(found->path, "quant_stage.quant_modifiers.GPTQModifier");
  const Recipe pruning = parse_recipe(
      "sparsity_stage:\n  sparsity_modifiers:\n    WandaPruningModifier: {sparsity: 0.5}\n",
      "t.yaml");
  EXPECT_EQ(first_weight_quantizer(pruning), nullptr);
}

}  // namespace
}  // namespace stunt::recipe
