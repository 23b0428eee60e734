// Hand-built tokenizers for edge cases and error messages. The expected ids come from Hugging
// Face tokenizers 0.23 on the same JSON; tests/python/test_tokenizers_reference.py checks whole
// corpora against it.
#include "stunt/io/tokenizer.h"

#include <gtest/gtest.h>

#include <cstring>
#include <nlohmann/json.hpp>

#include "stunt/core/error.h"
#include "test_util.h"

namespace stunt::io {
namespace {

using Ids = std::vector<int64_t>;
using nlohmann::json;

const char* const kWordPieceJson =
    R"({"version": "1.0", "added_tokens": [{"id": 0, "content": "[UNK]", "special": true, "normalized": false, "lstrip": false, "rstrip": false, "single_word": false}, {"id": 1, "content": "[CLS]", "special": true, "normalized": false, "lstrip": false, "rstrip": false, "single_word": false}, {"id": 2, "content": "[SEP]", "special": true, "normalized": false, "lstrip": false, "rstrip": false, "single_word": false}], "normalizer": {"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true, "strip_accents": null, "lowercase": true}, "pre_tokenizer": {"type": "BertPreTokenizer"}, "post_processor": {"type": "BertProcessing", "sep": ["[SEP]", 2], "cls": ["[CLS]", 1]}, "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": true}, "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##", "max_input_chars_per_word": 8, "vocab": {"[UNK]": 0, "[CLS]": 1, "[SEP]": 2, "hel": 3, "##lo": 4, "hello": 5, ",": 6, "cafe": 7, "world": 8, "!": 9, "中": 10, "##s": 11}}})";

const char* const kBpeJson =
    R"({"version": "1.0", "added_tokens": [{"id": 7, "content": "<|eot|>", "special": true, "normalized": false, "lstrip": true, "rstrip": true, "single_word": false}], "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true}, "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<|eot|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}], "pair": [], "special_tokens": {"<|eot|>": {"id": "<|eot|>", "ids": [7], "tokens": ["<|eot|>"]}}}, "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true}, "model": {"type": "BPE", "dropout": null, "unk_token": null, "ignore_merges": false, "vocab": {"a": 0, "b": 1, "Ġ": 2, "ab": 3, "Ġab": 4, "'": 5, "s": 6, "<|eot|>": 7}, "merges": [["a", "b"], ["Ġ", "ab"]]}})";

const char* const kUnigramJson =
    R"({"version": "1.0", "added_tokens": [], "normalizer": {"type": "Sequence", "normalizers": [{"type": "Nmt"}, {"type": "Lowercase"}]}, "pre_tokenizer": {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": true}, "decoder": {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": true}, "model": {"type": "Unigram", "unk_id": 0, "byte_fallback": false, "vocab": [["<unk>", 0.0], ["▁", -2.0], ["▁a", -1.0], ["b", -2.5], ["a", -3.0], ["▁ab", -4.0]]}})";

class TokenizerTest : public ::testing::Test {
 protected:
  Tokenizer load(const std::string& text) {
    const auto path = dir_ / "tokenizer.json";
    test::write_text(path, text);
    return Tokenizer::from_file(path);
  }
  Tokenizer load(const char* text) { return load(std::string(text)); }
  Tokenizer load(const json& spec) { return load(spec.dump()); }
  // The message of the FormatError that loading `spec` throws.
  std::string load_error(const json& spec) {
    try {
      load(spec);
    } catch (const FormatError& e) {
      return e.what();
    }
    return "(no error)";
  }
  test::TempDir dir_;
};

TEST_F(TokenizerTest, WordPieceMatchesHuggingFace) {
  const Tokenizer tok = load(kWordPieceJson);
  EXPECT_EQ(tok.kind(), "WordPiece");
  EXPECT_EQ(tok.encode("Hello, CAFÉ world!"), (Ids{1, 5, 6, 7, 8, 9, 2}));  // accents stripped
  EXPECT_EQ(tok.encode("hellos 中x"), (Ids{1, 5, 11, 10, 0, 2}));           // CJK split; x unknown
  // Longer than max_input_chars_per_word → [UNK]; NUL removed by clean_text.
  EXPECT_EQ(tok.encode(std::string("helloooooooo hel\0lo", 19)), (Ids{1, 0, 5, 2}));
  EXPECT_EQ(tok.encode("[CLS]hello"), (Ids{1, 1, 5, 2}));  // added tokens split out first
  EXPECT_EQ(tok.encode("hello", /*add_special_tokens=*/false), (Ids{5}));
  EXPECT_EQ(tok.decode({1, 5, 6, 7, 8, 9, 2}), "hello, cafe world!");
  EXPECT_EQ(tok.decode({1, 5, 2}, /*skip_special_tokens=*/false), "[CLS] hello [SEP]");
  EXPECT_EQ(tok.bos_id(), 1);
  EXPECT_EQ(tok.eos_id(), 2);
  EXPECT_EQ(tok.token_to_id("##lo"), 4);
  EXPECT_EQ(tok.id_to_token(8), "world");
  EXPECT_EQ(tok.vocab_size(), 12);
}

TEST_F(TokenizerTest, ByteLevelBpeMatchesHuggingFace) {
  const Tokenizer tok = load(kBpeJson);
  EXPECT_EQ(tok.kind(), "BPE");
  EXPECT_EQ(tok.encode("ab ab"), (Ids{7, 3, 4}));
  EXPECT_EQ(tok.encode("ab's"), (Ids{7, 3, 5, 6}));
  // lstrip and rstrip: the added token swallows the spaces around it.
  EXPECT_EQ(tok.encode("ab <|eot|> ab"), (Ids{7, 3, 7, 3}));
  EXPECT_EQ(tok.encode("\xc3\xbf"), (Ids{7}));  // bytes without a token and no unk: dropped
  EXPECT_EQ(tok.decode({3, 4}), "ab ab");
  EXPECT_EQ(tok.bos_id(), 7);
}

TEST_F(TokenizerTest, MergesAsStringsEqualMergesAsPairs) {
  json spec = json::parse(kBpeJson);
  spec["model"]["merges"] = {"a b", "\xc4\xa0 ab"};
  EXPECT_EQ(load(spec).encode("ab ab", false), (Ids{3, 4}));
}

TEST_F(TokenizerTest, UnigramMatchesHuggingFace) {
  const Tokenizer tok = load(kUnigramJson);
  EXPECT_EQ(tok.kind(), "Unigram");
  EXPECT_EQ(tok.encode("a b"), (Ids{2, 1, 3}));
  EXPECT_EQ(tok.encode("A\tab"), (Ids{2, 2, 3}));  // Nmt: tab → space; Viterbi prefers ▁a + b
  EXPECT_EQ(tok.encode("zz a"), (Ids{1, 0, 2}));   // unknown characters fuse into one <unk>
  EXPECT_EQ(tok.decode({2, 2, 3}), "a ab");
}

TEST_F(TokenizerTest, InvalidUtf8IsReplacedNotFatal) {
  for (const char* text : {"\xff\xfe", "ab\xc3", "\xed\xa0\x80 a", "\xf4\x90\x80\x80"}) {
    EXPECT_NO_THROW(load(kWordPieceJson).encode(text)) << text;
    EXPECT_NO_THROW(load(kBpeJson).encode(text)) << text;
    EXPECT_NO_THROW(load(kUnigramJson).encode(text)) << text;
  }
  // U+FFFD is removed by BERT's clean_text.
  EXPECT_EQ(load(kWordPieceJson).encode("hello\xff"), (Ids{1, 5, 2}));
}

TEST_F(TokenizerTest, EmptyAndWhitespaceText) {
  EXPECT_EQ(load(kWordPieceJson).encode(""), (Ids{1, 2}));
  EXPECT_EQ(load(kBpeJson).encode("", false), Ids{});
  EXPECT_EQ(load(kUnigramJson).encode("   ", false), (Ids{1, 1, 1}));
}

TEST_F(TokenizerTest, UnsupportedModelTypeNamesFileAndPath) {
  const std::string message =
      load_error(json{{"model", {{"type", "WordLevel"}, {"vocab", json::object()}}}});
  EXPECT_NE(
      message.find("tokenizer.json: model.type \"WordLevel\" is not supported; supported: BPE, "
                   "WordPiece, Unigram"),
      std::string::npos)
      << message;
}

TEST_F(TokenizerTest, UnsupportedRegexIsNamed) {
  json spec = json::parse(kBpeJson);
  spec["pre_tokenizer"] = {{"type", "Split"},
                           {"pattern", {{"Regex", "\\w+"}}},
                           {"behavior", "Isolated"},
                           {"invert", false}};
  const std::string message = load_error(spec);
  EXPECT_NE(
      message.find("pre_tokenizer.pattern.Regex \"\\w+\" is not a supported pre-tokenizer regex"),
      std::string::npos)
      << message;
}

TEST_F(TokenizerTest, MalformedFilesGetOneClearMessage) {
  EXPECT_THROW_WITH(load("{\"model\": "), FormatError, "not valid JSON");
  EXPECT_THROW_WITH(load("[1, 2]"), FormatError, "neither a tokenizer.json");

  json spec = json::parse(kBpeJson);
  spec["model"]["merges"] = {"a c"};
  EXPECT_NE(
      load_error(spec).find("model.merges[0] names a token that is not in model.vocab: \"c\""),
      std::string::npos);
  spec = json::parse(kBpeJson);
  spec["model"]["merges"] = {"a b c"};
  EXPECT_NE(load_error(spec).find("model.merges[0]"), std::string::npos);

  spec = json::parse(kWordPieceJson);
  spec["normalizer"] = {{"type", "NFKC"}};
  EXPECT_NE(load_error(spec).find("normalizer.type \"NFKC\" is not supported"), std::string::npos);

  spec = json::parse(kWordPieceJson);
  spec["model"]["vocab"]["hel"] = "3";
  EXPECT_NE(load_error(spec).find("model.vocab[\"hel\"] must be an integer, got string"),
            std::string::npos);

  spec = json::parse(kUnigramJson);
  spec["model"]["unk_id"] = 99;
  EXPECT_NE(load_error(spec).find("model.unk_id is 99, outside the vocab of 6 pieces"),
            std::string::npos);

  EXPECT_THROW_WITH(Tokenizer::from_file(dir_ / "missing.json"), IoError, "does not exist");
  std::filesystem::create_directories(dir_ / "empty");
  EXPECT_THROW_WITH(Tokenizer::from_folder(dir_ / "empty"), IoError, "has no tokenizer.json");
}

// A SentencePiece ModelProto, written with the protobuf wire format by hand.
std::string varint(uint64_t v) {
  std::string out;
  do {
    out += static_cast<char>((v & 0x7f) | (v >= 0x80 ? 0x80 : 0));
    v >>= 7;
  } while (v != 0);
  return out;
}
std::string field_bytes(int number, const std::string& payload) {
  return varint(static_cast<uint64_t>(number) << 3 | 2) + varint(payload.size()) + payload;
}
std::string field_varint(int number, uint64_t value) {
  return varint(static_cast<uint64_t>(number) << 3) + varint(value);
}
std::string piece(const std::string& text, float score, int type) {
  std::string score_bytes(4, '\0');
  std::memcpy(score_bytes.data(), &score, 4);  // little-endian hosts only, as the tests run
  return field_bytes(
      1, field_bytes(1, text) + varint(2 << 3 | 5) + score_bytes + field_varint(3, type));
}

TEST_F(TokenizerTest, SentencePieceModelProto) {
  constexpr int kNormal = 1, kUnknown = 2, kControl = 3;
  const std::string proto = piece("<unk>", 0, kUnknown) + piece("<s>", 0, kControl) +
                            piece("</s>", 0, kControl) +
                            piece(
                                "\xe2\x96\x81"
                                "a",
                                -1, kNormal) +
                            piece("b", -2, kNormal) + piece("\xe2\x96\x81", -3, kNormal) +
                            field_bytes(2, field_varint(43, 3)) +  // trainer_spec.pad_id = 3
                            field_bytes(3, field_varint(3, 1));    // normalizer add_dummy_prefix
  const auto path = dir_ / "spiece.model";
  test::write_text(path, proto);
  const Tokenizer tok = Tokenizer::from_folder(dir_.path());
  EXPECT_EQ(tok.kind(), "Unigram");
  // Extra spaces removed, dummy prefix added: "▁a▁b"; "c" is unknown.
  EXPECT_EQ(tok.encode("  a   b c"), (Ids{3, 5, 4, 5, 0}));
  EXPECT_EQ(tok.decode({1, 3, 5, 4, 2}), "a b");
  EXPECT_EQ(tok.bos_id(), 1);
  EXPECT_EQ(tok.eos_id(), 2);
  EXPECT_EQ(tok.pad_id(), 3);

  test::write_text(path, proto.substr(0, proto.size() - 3));
  EXPECT_THROW_WITH(Tokenizer::from_file(path), FormatError, "not a valid SentencePiece model");
  test::write_text(path, piece("a", 0, kNormal) + field_bytes(2, field_varint(3, 2)));
  EXPECT_THROW_WITH(Tokenizer::from_file(path), NotImplementedError,
                    "model_type BPE is not supported");
}

}  // namespace
}  // namespace stunt::io
