#include "stunt/io/checkpoint.h"

#include <ATen/ATen.h>

#include "stunt/core/error.h"
#include "stunt/io/hf_folder.h"
#include "stunt/io/inspect.h"
#include "stunt/io/safetensors.h"
#include "stunt/kernels/count_zeros.h"
#include "test_util.h"

namespace stunt::io {
namespace {

namespace fs = std::filesystem;

TEST(HfFolder, FindsWeightsInOrderOfPreference) {
  test::TempDir dir;
  EXPECT_THROW_WITH(find_hf_weights(dir.path()), IoError, "holds no model weights");
  test::write_text(dir / "pytorch_model.bin", "x");
  EXPECT_EQ(find_hf_weights(dir.path()).kind, HfWeights::Kind::TorchBin);
  save_safetensors(dir / "model.safetensors", {{"w", at::ones(1)}});
  EXPECT_EQ(find_hf_weights(dir.path()).kind, HfWeights::Kind::Safetensors);
}

TEST(HfFolder, PassthroughCopiesConfigTokenizerAndSentenceTransformerFiles) {
  test::TempDir src, dst;
  for (const char* name :
       {"config.json", "generation_config.json", "tokenizer.json", "vocab.txt", "modules.json"}) {
    test::write_text(src / name, std::string("{\"file\": \"") + name + "\"}");
  }
  fs::create_directories(src / "1_Pooling");
  test::write_text(src / "1_Pooling/config.json", "{\"pooling_mode_mean_tokens\": true}");
  save_safetensors(src / "model.safetensors", {{"w", at::ones(1)}});
  test::write_text(src / "notes.bin", "not passed through");
  const auto copied = copy_hf_passthrough_files(src.path(), dst.path());
  EXPECT_EQ(copied.size(), 6u);
  EXPECT_EQ(test::read_text(dst / "config.json"), test::read_text(src / "config.json"));
  EXPECT_EQ(test::read_text(dst / "1_Pooling/config.json"),
            test::read_text(src / "1_Pooling/config.json"));
  EXPECT_FALSE(fs::exists(dst / "model.safetensors"));  // weights are written by methods
  EXPECT_FALSE(fs::exists(dst / "notes.bin"));
}

TEST(Checkpoint, DetectsSafetensorsAndReportsInspectTotals) {
  test::TempDir dir;
  at::Tensor w = at::ones({4, 4});
  w.index_put_({at::indexing::Slice(0, 2)}, 0);  // half zeros
  save_safetensors(dir / "m.safetensors", {{"w", w}, {"b", at::zeros({4})}});
  const auto report = inspect(dir / "m.safetensors");
  EXPECT_EQ(report.format, "safetensors");
  ASSERT_EQ(report.tensors.size(), 2u);
  EXPECT_EQ(report.total_numel, 20u);
  EXPECT_EQ(report.total_zeros, 12u);
  const auto json = report.to_json();
  EXPECT_EQ(json["totals"]["bytes"], 80);
  EXPECT_NE(report.to_table().find("60.00%"), std::string::npos) << report.to_table();
}

TEST(Checkpoint, LegacyTorchSaveIsRefusedWithAFix) {
  test::TempDir dir;
  test::write_text(dir / "old.pt", std::string("\x80\x02\x8a\x0alegacy", 10));
  EXPECT_THROW_WITH(Checkpoint::open(dir / "old.pt"), FormatError, "legacy (pre-1.6)");
}

TEST(Checkpoint, MissingPathIsAnIoError) {
  EXPECT_THROW_WITH(Checkpoint::open("/no/such/model"), IoError, "does not exist");
}

TEST(CountZeros, CountsSignedZerosAcrossDtypes) {
  at::Tensor x = at::tensor({0.0f, -0.0f, 1.0f, 2.0f});
  for (auto type :
       {at::kFloat, at::kHalf, at::kBFloat16, at::kDouble, at::kFloat8_e4m3fn, at::kFloat8_e5m2}) {
    EXPECT_EQ(kernels::count_zeros(x.to(type)), 2) << c10::toString(type);
  }
  EXPECT_EQ(kernels::count_zeros(at::tensor(std::vector<int64_t>{0, 3, 0}).to(at::kInt)), 2);
  EXPECT_EQ(kernels::count_zeros(
                at::tensor(std::vector<int64_t>{0, 3, 0}).to(at::kInt).view(at::kUInt32)),
            2);
  EXPECT_EQ(kernels::count_zeros(at::tensor(std::vector<int64_t>{1, 0, 0}).to(at::kBool)), 2);
  // fp4 e2m1: byte 0x80 holds +0 (low nibble) and -0 (high nibble); 0x21 holds two non-zeros.
  at::Tensor fp4 =
      at::tensor(std::vector<int64_t>{0x80, 0x21}).to(at::kByte).view(at::kFloat4_e2m1fn_x2);
  EXPECT_EQ(kernels::logical_numel(fp4), 4);
  EXPECT_EQ(kernels::count_zeros(fp4), 2);
  at::Tensor complex = at::view_as_complex(at::tensor({0.0f, 0.0f, 0.0f, 1.0f}).reshape({2, 2}));
  EXPECT_EQ(kernels::count_zeros(complex), 1);
}

}  // namespace
}  // namespace stunt::io
