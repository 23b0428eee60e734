// The model interface on a tiny Llama written by the test: layers and target matching, input
// capture, layer swaps, block-by-block runs, saving, and the errors for bad folders.
#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "stunt/core/error.h"
#include "stunt/io/gguf.h"
#include "stunt/io/safetensors.h"
#include "stunt/io/tokenizer.h"
#include "stunt/model/hf_model.h"
#include "stunt/model/load.h"
#include "test_util.h"
#include "tiny_llama.h"

namespace stunt::model {
namespace {

using namespace test::tiny_llama;

nlohmann::json tiny_config() { return test::tiny_llama::config(); }
std::vector<io::NamedTensor> tiny_weights() { return test::tiny_llama::weights(); }
void write_model(const std::filesystem::path& folder, const nlohmann::json& config,
                 const std::vector<io::NamedTensor>& weights) {
  test::tiny_llama::write(folder, config, weights);
}

Batch tiny_batch() {
  Batch batch;
  batch.input_ids = at::arange(14, at::kLong).remainder(kVocab).view({2, 7});
  return batch;
}

class HfModelTest : public ::testing::Test {
 protected:
  void SetUp() override { write_model(dir_.path() / "tiny", tiny_config(), tiny_weights()); }
  std::filesystem::path folder() const { return dir_.path() / "tiny"; }
  test::TempDir dir_;
};

TEST_F(HfModelTest, ListsLayersAndMatchesTargetsAsRecipesNameThem) {
  auto model = load_hf_model(folder());
  EXPECT_EQ(model->architecture(), "llama");
  EXPECT_EQ(model->layers().size(), static_cast<size_t>(2 + 7 * kLayers));  // + embed, lm_head
  EXPECT_EQ(model->match({"Linear"}, {"lm_head"}).size(), static_cast<size_t>(7 * kLayers));
  EXPECT_EQ(model->match({"re:.*mlp.*"}).size(), static_cast<size_t>(3 * kLayers));
  // re: anchors at the start like Python's re.match, not anywhere.
  EXPECT_TRUE(model->match({"re:mlp"}).empty());
  auto one = model->match({"model.layers.1.self_attn.k_proj"});
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0]->block, 1);
  EXPECT_EQ(one[0]->out_features(), kKv * kHidden / kHeads);
  EXPECT_EQ(model->block_layers(0).size(), 7u);
  EXPECT_THROW_WITH(model->layer("layers.0.self_attn.q_proj"), ValueError,
                    "similar: model.layers.0.self_attn.q_proj");
  EXPECT_THROW_WITH(model->match({"re:("}), ValueError, "not a valid regular expression");
}

TEST_F(HfModelTest, CaptureSeesEachChosenLayerInputOncePerForward) {
  auto model = load_hf_model(folder());
  std::map<std::string, at::Tensor> seen;
  int calls = 0;
  {
    InputCapture capture(*model, model->match({"re:.*down_proj"}),
                         [&](const Layer& layer, const at::Tensor& input) {
                           seen[layer.name] = input.clone();
                           ++calls;
                         });
    model->forward(tiny_batch());
  }
  EXPECT_EQ(calls, kLayers);
  ASSERT_TRUE(seen.count("model.layers.0.mlp.down_proj"));
  EXPECT_EQ(seen["model.layers.0.mlp.down_proj"].sizes(), (at::IntArrayRef{2, 7, kInter}));
  // The captured input is what the layer really receives: re-applying the layer to it and
  // swapping in that result changes nothing.
  Layer& down = model->layer("model.layers.0.mlp.down_proj");
  const at::Tensor expected = model->forward(tiny_batch()).logits;
  at::Tensor recorded;
  LayerSwap swap(down, [&](const at::Tensor& input, const Layer& layer) {
    recorded = input;
    return at::linear(input, layer.weight);
  });
  EXPECT_TRUE(at::equal(model->forward(tiny_batch()).logits, expected));
  EXPECT_TRUE(at::equal(recorded, seen["model.layers.0.mlp.down_proj"]));
  // Only one capture at a time.
  InputCapture first(*model, {&down}, [](const Layer&, const at::Tensor&) {});
  EXPECT_THROW(InputCapture(*model, {&down}, [](const Layer&, const at::Tensor&) {}),
               LifecycleError);
}

TEST_F(HfModelTest, SwapChangesTheOutputUntilTheGuardEnds) {
  auto model = load_hf_model(folder());
  const at::Tensor before = model->forward(tiny_batch()).logits;
  {
    LayerSwap swap(model->layer("model.layers.1.mlp.down_proj"),
                   [](const at::Tensor& input, const Layer& layer) {
                     return at::zeros({input.size(0), input.size(1), layer.out_features()});
                   });
    EXPECT_FALSE(at::allclose(model->forward(tiny_batch()).logits, before));
  }
  EXPECT_TRUE(at::equal(model->forward(tiny_batch()).logits, before));
}

TEST_F(HfModelTest, BlockByBlockEqualsForwardAndSeesWeightChangesBetweenBlocks) {
  auto model = load_hf_model(folder());
  const at::Tensor full = model->forward(tiny_batch()).logits;
  c10::NoGradGuard no_grad;
  BlockState state = model->embed(tiny_batch());
  model->run_block(0, state);
  // Sequential calibration changes block 1 after block 0 ran: the next block sees it.
  model->layer("model.layers.1.mlp.up_proj").weight.mul_(0.5);
  model->run_block(1, state);
  const at::Tensor changed = model->head(state).logits;
  EXPECT_FALSE(at::allclose(changed, full));
  EXPECT_TRUE(at::equal(changed, model->forward(tiny_batch()).logits));
}

TEST_F(HfModelTest, SavedFolderReloadsWithTheEditedWeights) {
  auto model = load_hf_model(folder());
  model->layer("model.layers.0.self_attn.q_proj").weight.mul_(-1.5);
  const at::Tensor expected = model->forward(tiny_batch()).logits;
  model->save(dir_.path() / "saved");
  auto reloaded = load_dense_model(dir_.path() / "saved");
  EXPECT_TRUE(at::equal(reloaded->forward(tiny_batch()).logits, expected));
  // The tied head is not written while it still shares the embedding.
  auto file = io::SafetensorsFile::open(dir_.path() / "saved" / "model.safetensors");
  EXPECT_FALSE(file->contains("lm_head.weight"));
  EXPECT_EQ(file->header().tensors.size(), tiny_weights().size());
}

TEST_F(HfModelTest, BadWeightsAreReportedByNameWithShapes) {
  auto weights = tiny_weights();
  weights.erase(weights.begin() + 2);     // model.layers.0.self_attn.q_proj.weight
  weights[4].second = at::zeros({3, 3});  // model.layers.0.self_attn.o_proj.weight
  weights.emplace_back("model.layers.0.self_attn.extra.weight", at::zeros({2}));
  write_model(dir_.path() / "bad", tiny_config(), weights);
  try {
    load_hf_model(dir_.path() / "bad");
    FAIL() << "expected FormatError";
  } catch (const FormatError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("missing tensors: model.layers.0.self_attn.q_proj.weight [16, 16]"),
              std::string::npos)
        << message;
    EXPECT_NE(message.find("model.layers.0.self_attn.o_proj.weight is [3, 3], expected [16, 16]"),
              std::string::npos)
        << message;
    EXPECT_NE(message.find("does not have: model.layers.0.self_attn.extra.weight [2]"),
              std::string::npos)
        << message;
  }
}

TEST_F(HfModelTest, BadConfigsNameTheKey) {
  auto config = tiny_config();
  config["num_attention_heads"] = 0;
  write_model(dir_.path() / "zero_heads", config, tiny_weights());
  EXPECT_THROW_WITH(load_hf_model(dir_.path() / "zero_heads"), FormatError,
                    "num_attention_heads = 0 is out of range");
  config = tiny_config();
  config["num_key_value_heads"] = 3;
  write_model(dir_.path() / "gqa", config, tiny_weights());
  EXPECT_THROW_WITH(load_hf_model(dir_.path() / "gqa"), FormatError,
                    "num_key_value_heads = 3 does not divide num_attention_heads 4");
  config = tiny_config();
  config["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}};
  write_model(dir_.path() / "yarn", config, tiny_weights());
  EXPECT_THROW_WITH(load_hf_model(dir_.path() / "yarn"), FormatError,
                    "rope type \"yarn\" is not supported; supported: default, linear, llama3");
  config = tiny_config();
  config["model_type"] = "qwen2";
  config["use_sliding_window"] = true;
  write_model(dir_.path() / "qwen2", config, tiny_weights());
  EXPECT_THROW_WITH(load_hf_model(dir_.path() / "qwen2"), FormatError,
                    "use_sliding_window = true is not supported for qwen2");
  config = tiny_config();
  config["model_type"] = "mamba";
  write_model(dir_.path() / "mamba", config, tiny_weights());
  EXPECT_THROW_WITH(load_hf_model(dir_.path() / "mamba"), NotImplementedError,
                    "model_type \"mamba\" is not supported natively; supported: bert, llama, "
                    "mistral, qwen2, gpt2, t5");
  EXPECT_THROW_WITH(load_dense_model(dir_.path() / "missing"), IoError, "does not exist");
}

TEST_F(HfModelTest, BatchesAreChecked) {
  auto model = load_hf_model(folder());
  Batch batch = tiny_batch();
  batch.input_ids[0][0] = kVocab;
  EXPECT_THROW_WITH(model->forward(batch), ValueError, "token ids must lie in [0, 40), found 40");
  batch.input_ids = at::zeros({1, 65}, at::kLong);
  EXPECT_THROW_WITH(model->forward(batch), ValueError,
                    "sequence length 65 exceeds the model's max_position_embeddings 64");
}

TEST(GgufFileTest, RejectsWrongMagicAndTruncation) {
  test::TempDir dir;
  test::write_text(dir.path() / "a.gguf", "GGML not really");
  EXPECT_THROW_WITH(io::GgufFile::open(dir.path() / "a.gguf"), FormatError, "not a GGUF file");
  // Valid header claiming one metadata entry whose string key runs past the end.
  std::string bytes = "GGUF";
  auto put = [&](uint64_t value, int size) {
    for (int i = 0; i < size; ++i) bytes.push_back(static_cast<char>((value >> (8 * i)) & 0xFF));
  };
  put(3, 4);    // version
  put(0, 8);    // tensors
  put(1, 8);    // metadata entries
  put(100, 8);  // key length, but only 3 bytes follow
  bytes += "abc";
  test::write_text(dir.path() / "b.gguf", bytes);
  EXPECT_THROW_WITH(io::GgufFile::open(dir.path() / "b.gguf"), FormatError,
                    "truncated at byte 32 while reading a metadata key");
}

// A minimal GGUF writer for metadata-only files.
class GgufBytes {
 public:
  GgufBytes(uint64_t kv_count) {
    bytes_ = "GGUF";
    put(3, 4);
    put(0, 8);
    put(kv_count, 8);
  }
  void put(uint64_t value, int size) {
    for (int i = 0; i < size; ++i) bytes_.push_back(static_cast<char>((value >> (8 * i)) & 0xFF));
  }
  void text(const std::string& s) {
    put(s.size(), 8);
    bytes_ += s;
  }
  void string_kv(const std::string& key, const std::string& value) {
    text(key);
    put(8, 4);
    text(value);
  }
  void string_array_kv(const std::string& key, const std::vector<std::string>& values) {
    text(key);
    put(9, 4);
    put(8, 4);
    put(values.size(), 8);
    for (const auto& v : values) text(v);
  }
  const std::string& bytes() const { return bytes_; }

 private:
  std::string bytes_;
};

TEST(GgufFileTest, ArrayCountsBeyondTheFileAreRefusedBeforeAllocating) {
  test::TempDir dir;
  GgufBytes g(1);
  g.text("tokenizer.ggml.tokens");
  g.put(9, 4);                  // array
  g.put(8, 4);                  // of strings: 8 bytes each at least
  g.put(uint64_t{1} << 40, 8);  // a trillion items
  g.text("a");
  test::write_text(dir.path() / "big.gguf", g.bytes());
  EXPECT_THROW_WITH(io::GgufFile::open(dir.path() / "big.gguf"), FormatError,
                    "claims 1099511627776 array items");
}

TEST(GgufFileTest, VocabulariesStuntCannotReproduceAreRefusedNotApproximated) {
  test::TempDir dir;
  auto write = [&](const std::string& name, const std::string& pre) {
    GgufBytes g(pre.empty() ? 3 : 4);
    g.string_kv("tokenizer.ggml.model", "gpt2");
    if (!pre.empty()) g.string_kv("tokenizer.ggml.pre", pre);
    g.string_array_kv("tokenizer.ggml.tokens", {"a", "b", "ab"});
    g.string_array_kv("tokenizer.ggml.merges", {"a b"});
    test::write_text(dir.path() / name, g.bytes());
    return dir.path() / name;
  };
  EXPECT_EQ(io::Tokenizer::from_file(write("gpt2.gguf", "gpt-2")).encode("ab", false),
            (std::vector<int64_t>{2}));
  // llama.cpp's "default" pre-tokenizer is not GPT-2's expression.
  EXPECT_THROW_WITH(io::Tokenizer::from_file(write("default.gguf", "default")), NotImplementedError,
                    "tokenizer.ggml.pre \"default\" is not supported");
  EXPECT_THROW_WITH(io::Tokenizer::from_file(write("none.gguf", "")), NotImplementedError,
                    "tokenizer.ggml.pre \"(none)\" is not supported");
}

TEST_F(HfModelTest, AWrongConfigIsReportedWithoutAllocatingItsClaims) {
  auto config = tiny_config();
  config["vocab_size"] = int64_t{1} << 36;  // 2^36 x 16 floats would be 4 TiB
  write_model(dir_.path() / "huge", config, tiny_weights());
  EXPECT_THROW_WITH(load_hf_model(dir_.path() / "huge"), FormatError,
                    "model.embed_tokens.weight is [40, 16], expected [68719476736, 16]");
}

}  // namespace
}  // namespace stunt::model
