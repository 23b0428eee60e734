#include "stunt/io/safetensors.h"

#include <ATen/ATen.h>

#include "stunt/core/error.h"
#include "stunt/io/checkpoint.h"
#include "stunt/io/safetensors_index.h"
#include "stunt/io/tensor_dtype.h"
#include "test_util.h"

namespace stunt::io {
namespace {

namespace fs = std::filesystem;

std::vector<NamedTensor> sample_tensors() {
  at::manual_seed(0);
  return {{"b.weight", at::randn({3, 5})},
          {"a.bias", at::randn({5}).to(at::kHalf)},
          {"scalar", at::scalar_tensor(2.5, at::kDouble)},
          {"empty", at::zeros({0, 4}, at::kInt)},
          {"mask", at::rand({7}) > 0.5},
          {"ids", at::arange(11, at::kLong)},
          {"bf", at::randn({2, 2}).to(at::kBFloat16)},
          {"fp8", at::randn({4, 4}).to(at::kFloat8_e4m3fn)}};
}

TEST(Safetensors, RoundTripKeepsEveryTensorBitExact) {
  test::TempDir dir;
  const auto tensors = sample_tensors();
  save_safetensors(dir / "m.safetensors", tensors, {.metadata = {{"format", "pt"}}});
  const auto file = SafetensorsFile::open(dir / "m.safetensors");
  EXPECT_EQ(file->header().metadata.at("format"), "pt");
  ASSERT_EQ(file->header().tensors.size(), tensors.size());
  for (const auto& [name, expected] : tensors) {
    const at::Tensor got = file->tensor(name);
    EXPECT_EQ(got.scalar_type(), expected.scalar_type()) << name;
    EXPECT_EQ(got.sizes(), expected.sizes()) << name;
    EXPECT_TRUE(at::equal(got.reshape({-1}).view(at::kByte),
                          expected.contiguous().reshape({-1}).view(at::kByte)))
        << name;
  }
}

TEST(Safetensors, EveryLibTorchDtypeWithASafetensorsNameRoundTrips) {
  test::TempDir dir;
  std::vector<NamedTensor> tensors;
  for (int i = 0; i <= static_cast<int>(SafetensorsDtype::U64); ++i) {
    const auto dtype = static_cast<SafetensorsDtype>(i);
    const auto type = to_scalar_type(dtype);
    if (!type) continue;
    // Random bytes reinterpreted, so every dtype carries non-trivial bits.
    at::Tensor bytes = at::randint(0, 256, {4 * static_cast<int64_t>(c10::elementSize(*type))},
                                   at::TensorOptions().dtype(at::kByte));
    tensors.emplace_back(dtype_name(dtype), bytes.view(*type));
  }
  ASSERT_EQ(tensors.size(), 20u);  // all but the two F6 types
  save_safetensors(dir / "all.safetensors", tensors);
  const auto file = SafetensorsFile::open(dir / "all.safetensors");
  for (const auto& [name, expected] : tensors) {
    EXPECT_EQ(file->header().find(name)->dtype, *dtype_from_name(name));
    const at::Tensor got = file->tensor(name);
    EXPECT_EQ(got.scalar_type(), expected.scalar_type()) << name;
    EXPECT_TRUE(at::equal(got.view(at::kByte), expected.view(at::kByte))) << name;
  }
  // F4 packs two values per LibTorch element: the header shows the logical count.
  EXPECT_EQ(file->header().find("F4")->shape, std::vector<int64_t>({8}));
}

TEST(Safetensors, AlignedTensorsShareTheMappingAndWritesStayPrivate) {
  test::TempDir dir;
  save_safetensors(dir / "m.safetensors", {{"w", at::ones({16})}});
  const std::string before = test::read_text(dir / "m.safetensors");
  {
    const auto file = SafetensorsFile::open(dir / "m.safetensors");
    at::Tensor a = file->tensor("w");
    at::Tensor b = file->tensor("w");
    EXPECT_EQ(a.data_ptr(), b.data_ptr());  // both alias the mapping: no copy
    a.mul_(3);                              // copy-on-write: the file must not change
    EXPECT_EQ(b[0].item<float>(), 3.0f);
  }
  EXPECT_EQ(test::read_text(dir / "m.safetensors"), before);
}

TEST(Safetensors, TensorOutlivesItsFileObject) {
  test::TempDir dir;
  save_safetensors(dir / "m.safetensors", {{"w", at::arange(8, at::kFloat)}});
  at::Tensor t;
  { t = SafetensorsFile::open(dir / "m.safetensors")->tensor("w"); }
  EXPECT_EQ(t.sum().item<float>(), 28.0f);  // mapping kept alive by the tensor
}

TEST(Safetensors, MisalignedDataIsCopied) {
  test::TempDir dir;
  // Written by hand: a 1-byte tensor first puts the F32 tensor at an odd offset.
  const std::vector<float> values = {1, 2, 3, 4};
  std::string data(1, '\x07');
  data.append(reinterpret_cast<const char*>(values.data()), 16);
  test::write_text(
      dir / "m.safetensors",
      test::safetensors_bytes(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                              R"("w":{"dtype":"F32","shape":[4],"data_offsets":[1,17]}})",
                              data));
  const auto file = SafetensorsFile::open(dir / "m.safetensors");
  const at::Tensor w = file->tensor("w");
  EXPECT_EQ(reinterpret_cast<uintptr_t>(w.data_ptr()) % 4, 0u);
  EXPECT_TRUE(at::equal(w, at::tensor({1.0f, 2.0f, 3.0f, 4.0f})));
  EXPECT_EQ(file->tensor("a").item<uint8_t>(), 7);
}

TEST(Safetensors, WriterRejectsDuplicateAndReservedNames) {
  test::TempDir dir;
  EXPECT_THROW_WITH(
      save_safetensors(dir / "x.safetensors", {{"a", at::ones(1)}, {"a", at::ones(1)}}), ValueError,
      "appears twice");
  EXPECT_THROW_WITH(save_safetensors(dir / "x.safetensors", {{"__metadata__", at::ones(1)}}),
                    ValueError, "reserved");
  EXPECT_FALSE(fs::exists(dir / "x.safetensors"));
}

TEST(Safetensors, UnknownTensorNameIsAValueError) {
  test::TempDir dir;
  save_safetensors(dir / "m.safetensors", {{"w", at::ones(2)}});
  EXPECT_THROW_WITH(SafetensorsFile::open(dir / "m.safetensors")->tensor("nope"), ValueError,
                    "no tensor named 'nope'");
}

TEST(ShardedSafetensors, SplitsAtTheLimitAndReadsBackThroughTheIndex) {
  test::TempDir dir;
  std::vector<NamedTensor> tensors;
  for (int i = 0; i < 5; ++i)
    tensors.emplace_back("layer" + std::to_string(i), at::full({100}, float(i)));
  // 400 bytes each; a 1000-byte limit holds two per shard.
  const auto files = save_safetensors_sharded(dir.path(), tensors, {.max_shard_bytes = 1000});
  ASSERT_EQ(files.size(), 4u);  // 3 shards + index
  EXPECT_TRUE(fs::exists(dir / "model-00001-of-00003.safetensors"));
  const auto index =
      parse_safetensors_index(test::read_text(dir / "model.safetensors.index.json"), "index");
  EXPECT_EQ(index.total_size, 2000u);
  EXPECT_EQ(index.weight_map.at("layer4"), "model-00003-of-00003.safetensors");
  const auto checkpoint = Checkpoint::open(dir.path());
  EXPECT_EQ(checkpoint->format(), CheckpointFormat::SafetensorsSharded);
  ASSERT_EQ(checkpoint->entries().size(), 5u);
  for (int i = 0; i < 5; ++i) {
    EXPECT_TRUE(
        at::equal(checkpoint->load("layer" + std::to_string(i)), at::full({100}, float(i))));
  }
}

TEST(ShardedSafetensors, SmallModelsStayInOneFile) {
  test::TempDir dir;
  const auto files = save_safetensors_sharded(dir.path(), {{"w", at::ones(3)}});
  ASSERT_EQ(files.size(), 1u);
  EXPECT_EQ(files[0].filename(), "model.safetensors");
}

TEST(ShardedSafetensors, IndexNamingAMissingTensorIsAFormatError) {
  test::TempDir dir;
  save_safetensors(dir / "model-00001-of-00001.safetensors", {{"a", at::ones(1)}});
  test::write_text(dir / "model.safetensors.index.json",
                   R"({"weight_map": {"a": "model-00001-of-00001.safetensors",
                                      "b": "model-00001-of-00001.safetensors"}})");
  EXPECT_THROW_WITH(Checkpoint::open(dir.path()), FormatError, "has no such tensor");
}

}  // namespace
}  // namespace stunt::io
