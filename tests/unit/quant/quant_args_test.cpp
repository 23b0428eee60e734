#include "stunt/quant/quant_args.h"

#include "stunt/core/error.h"
#include "test_util.h"

namespace stunt::quant {
namespace {

using Json = nlohmann::ordered_json;

TEST(QuantArgs, StrategyIsInferredFromGroupSize) {
  EXPECT_EQ(QuantArgs::from_json(Json::parse(R"({"num_bits": 4})")).resolved_strategy(),
            QuantStrategy::Tensor);
  EXPECT_EQ(QuantArgs::from_json(Json::parse(R"({"group_size": 128})")).resolved_strategy(),
            QuantStrategy::Group);
  EXPECT_EQ(QuantArgs::from_json(Json::parse(R"({"group_size": -1})")).resolved_strategy(),
            QuantStrategy::Channel);
}

TEST(QuantArgs, CompressedTensorsRulesAreEnforced) {
  EXPECT_THROW_WITH(QuantArgs::from_json(Json::parse(R"({"strategy": "token"})")), ValueError,
                    "set dynamic: true");
  EXPECT_THROW_WITH(QuantArgs::from_json(Json::parse(R"({"strategy": "group"})")), ValueError,
                    "add e.g. group_size: 128");
  EXPECT_THROW_WITH(
      QuantArgs::from_json(Json::parse(R"({"strategy": "channel", "group_size": 64})")), ValueError,
      "requires strategy 'group'");
  EXPECT_THROW_WITH(
      QuantArgs::from_json(Json::parse(R"({"strategy": "channel", "actorder": "group"})")),
      ValueError, "was removed from compressed-tensors");
  EXPECT_THROW_WITH(QuantArgs::from_json(Json::parse(R"({"actorder": true})")), ValueError,
                    "use actorder: weight");
  EXPECT_THROW_WITH(QuantArgs::from_json(Json::parse(R"({"type": "float", "num_bits": 6})")),
                    ValueError, "use 8 (fp8 e4m3) or 4");
  EXPECT_THROW_WITH(QuantArgs::from_json(Json::parse(R"({"bits": 4})")), ValueError,
                    "bits: unknown key");
  EXPECT_THROW_WITH(QuantArgs::from_json(Json::parse(R"({"strategy": "block"})")), ValueError,
                    "needs block_structure");
}

TEST(QuantArgs, JsonRoundTripsAndActorderAliasesResolve) {
  const auto a = QuantArgs::from_json(Json::parse(
      R"({"num_bits": 4, "strategy": "group", "group_size": 128, "actorder": "static",
          "symmetric": false})"));
  EXPECT_EQ(a.actorder, ActOrder::Static);
  const auto b = QuantArgs::from_json(a.to_json());
  EXPECT_EQ(b.to_json(), a.to_json());
  EXPECT_EQ(a.to_json()["strategy"], "group");
  EXPECT_EQ(a.to_json()["symmetric"], false);
}

TEST(SchemePresets, MeanWhatCompressedTensorsMeans) {
  const auto* w4 = find_scheme_preset("w4a16");
  ASSERT_NE(w4, nullptr);
  EXPECT_EQ(w4->scheme.weights->num_bits, 4);
  EXPECT_EQ(w4->scheme.weights->group_size, 128);
  EXPECT_TRUE(w4->scheme.weights->symmetric);
  EXPECT_FALSE(w4->scheme.input_activations.has_value());
  const auto* w8a8 = find_scheme_preset("W8A8");
  EXPECT_EQ(w8a8->scheme.weights->resolved_strategy(), QuantStrategy::Channel);
  EXPECT_EQ(w8a8->scheme.input_activations->resolved_strategy(), QuantStrategy::Token);
  EXPECT_EQ(w8a8->scheme.input_activations->dynamic, DynamicKind::Dynamic);
  EXPECT_FALSE(find_scheme_preset("W4A16_ASYM")->scheme.weights->symmetric);
  EXPECT_EQ(find_scheme_preset("FP8")->scheme.input_activations->dynamic, DynamicKind::Static);
  EXPECT_EQ(find_scheme_preset("FP8_DYNAMIC")->scheme.weights->type, QuantType::Float);
  EXPECT_EQ(find_scheme_preset("nope"), nullptr);
  for (const auto& p : scheme_presets()) EXPECT_NO_THROW(p.scheme.validate()) << p.name;
}

}  // namespace
}  // namespace stunt::quant
