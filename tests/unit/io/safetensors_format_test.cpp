#include "stunt/io/safetensors_format.h"

#include "stunt/core/error.h"
#include "stunt/io/safetensors_index.h"
#include "test_util.h"

namespace stunt::io {
namespace {

SafetensorsHeader parse(const std::string& bytes) {
  return parse_safetensors_header(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(),
                                  bytes.size(), "test.safetensors");
}

TEST(SafetensorsFormat, AcceptsWhitespaceAroundTheHeaderAndZeroSizedTensors) {
  const std::string bytes =
      test::safetensors_bytes(R"(  {"e":{"dtype":"F32","shape":[0,3],"data_offsets":[0,0]},)"
                              R"("s":{"dtype":"F64","shape":[],"data_offsets":[0,8]}}  )",
                              std::string(8, '\0'), /*pad=*/false);
  const auto header = parse(bytes);
  ASSERT_EQ(header.tensors.size(), 2u);
  EXPECT_EQ(header.find("s")->shape.size(), 0u);
  EXPECT_EQ(header.find("s")->numel, 1u);
  EXPECT_EQ(header.find("e")->numel, 0u);
}

TEST(SafetensorsFormat, SerializedHeaderIsPaddedAndOrdered) {
  std::vector<SafetensorsTensorInfo> tensors = {{"b", SafetensorsDtype::F32, {2}, 0, 8, 2},
                                                {"a", SafetensorsDtype::U8, {3}, 8, 11, 3}};
  const std::string header = serialize_safetensors_header(tensors, {{"format", "pt"}});
  EXPECT_EQ(header.size() % 8, 0u);
  EXPECT_EQ(header.rfind(R"({"__metadata__":{"format":"pt"},"b":{"dtype":"F32","shape":[2],)"
                         R"("data_offsets":[0,8]},"a":)",
                         0),
            0u)
      << header;
  const auto parsed = parse(test::safetensors_bytes(header, std::string(11, '\1')));
  EXPECT_EQ(parsed.metadata.at("format"), "pt");
}

TEST(SafetensorsFormat, DtypeTableIsComplete) {
  EXPECT_EQ(all_dtype_names(),
            "BOOL, F4, F6_E2M3, F6_E3M2, U8, I8, F8_E5M2, F8_E4M3, F8_E8M0, F8_E4M3FNUZ, "
            "F8_E5M2FNUZ, I16, U16, F16, BF16, I32, U32, F32, C64, F64, I64, U64");
  EXPECT_EQ(dtype_bits(SafetensorsDtype::F6_E3M2), 6);
  EXPECT_EQ(dtype_bits(SafetensorsDtype::C64), 64);
  EXPECT_FALSE(dtype_from_name("F17").has_value());
}

TEST(SafetensorsIndex, ParsesWeightMapAndTotalSize) {
  const auto index = parse_safetensors_index(
      R"({"metadata":{"total_size":24},"weight_map":{"a":"m-1.safetensors","b":"m-2.safetensors",)"
      R"("c":"m-1.safetensors"}})",
      "index.json");
  EXPECT_EQ(index.total_size, 24u);
  EXPECT_EQ(index.shards(), std::vector<std::string>({"m-1.safetensors", "m-2.safetensors"}));
}

TEST(SafetensorsIndex, SubfolderInsideIsAllowedButEscapeIsNot) {
  EXPECT_NO_THROW(parse_safetensors_index(R"({"weight_map":{"a":"sub/m.safetensors"}})", "i"));
  EXPECT_THROW_WITH(
      parse_safetensors_index(R"({"weight_map":{"a":"sub/../../m.safetensors"}})", "i"),
      FormatError, "leaves the index's folder");
}

}  // namespace
}  // namespace stunt::io
