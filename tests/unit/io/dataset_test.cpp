// Datasets: lines, JSONL, windows over the "\n\n"-joined rows, seeded calibration samples and
// padding, on tiny files and hand-built tokenizers. tests/python/test_datasets_reference.py
// checks windows on wikitext-2 against Hugging Face tokenizers.
#include "stunt/io/dataset.h"

#include <gtest/gtest.h>

#include <random>

#include "stunt/core/error.h"
#include "test_util.h"

namespace stunt::io {
namespace {

using Ids = std::vector<int64_t>;

// Word-level WordPiece: every word of the texts below is one id; [CLS]=1, [SEP]=2, [PAD]=3.
const char* const kWordsJson =
    R"({"version": "1.0", "added_tokens": [{"id": 0, "content": "[UNK]", "special": true, "normalized": false, "lstrip": false, "rstrip": false, "single_word": false}, {"id": 1, "content": "[CLS]", "special": true, "normalized": false, "lstrip": false, "rstrip": false, "single_word": false}, {"id": 2, "content": "[SEP]", "special": true, "normalized": false, "lstrip": false, "rstrip": false, "single_word": false}, {"id": 3, "content": "[PAD]", "special": true, "normalized": false, "lstrip": false, "rstrip": false, "single_word": false}], "normalizer": {"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true, "strip_accents": null, "lowercase": true}, "pre_tokenizer": {"type": "BertPreTokenizer"}, "post_processor": {"type": "BertProcessing", "sep": ["[SEP]", 2], "cls": ["[CLS]", 1]}, "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": true}, "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##", "max_input_chars_per_word": 100, "vocab": {"[UNK]": 0, "[CLS]": 1, "[SEP]": 2, "[PAD]": 3, "the": 4, "cat": 5, "sat": 6, "on": 7, "mat": 8, ".": 9, "a": 10, "dog": 11, "ran": 12}}})";

// Byte-level BPE whose merges cross whitespace ("ĊĊ" is "\n\n", "Ġab" is " ab"), with a
// prefix space and an lstrip/rstrip added token: cutting the text at a wrong place changes
// the ids.
const char* const kByteBpeJson =
    R"({"version": "1.0", "added_tokens": [{"id": 9, "content": "<x>", "special": true, "normalized": false, "lstrip": true, "rstrip": true, "single_word": false}], "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true}, "post_processor": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true}, "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true}, "model": {"type": "BPE", "dropout": null, "unk_token": null, "ignore_merges": false, "vocab": {"a": 0, "b": 1, "Ġ": 2, "ab": 3, "Ġab": 4, "Ċ": 5, "ĊĊ": 6, ".": 7, "Ġ.": 8, "<x>": 9, "ĠĊ": 10}, "merges": [["a", "b"], ["Ġ", "ab"], ["Ċ", "Ċ"], ["Ġ", "."], ["Ġ", "Ċ"]]}})";

// SentencePiece-style Unigram with Metaspace (a "▁" before each word).
const char* const kUnigramJson =
    R"({"version": "1.0", "added_tokens": [], "normalizer": {"type": "Sequence", "normalizers": [{"type": "Nmt"}, {"type": "Lowercase"}]}, "pre_tokenizer": {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": true}, "decoder": {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": true}, "model": {"type": "Unigram", "unk_id": 0, "byte_fallback": false, "vocab": [["<unk>", 0.0], ["▁", -2.0], ["▁a", -1.0], ["b", -2.5], ["a", -3.0], ["▁ab", -4.0], [".", -3.0]]}})";

class DatasetTest : public ::testing::Test {
 protected:
  Tokenizer load(const char* json, const std::string& name = "tokenizer.json") {
    const auto path = dir_ / name;
    test::write_text(path, json);
    return Tokenizer::from_file(path);
  }
  std::filesystem::path file(const std::string& name, const std::string& content) {
    const auto path = dir_ / name;
    test::write_text(path, content);
    return path;
  }
  test::TempDir dir_;
};

TEST_F(DatasetTest, LinesSkipBlankLinesAndCountBytes) {
  const Tokenizer tok = load(kWordsJson);
  const auto path = file("data.txt", "The cat sat.\n\n   \r\na dog ran\r\nthe mat");
  auto dataset = TextDataset::open(path, tok);
  EXPECT_EQ(dataset.format(), DatasetFormat::Lines);
  EXPECT_EQ(dataset.size_bytes(), 37u);
  auto samples = dataset.read();
  ASSERT_EQ(samples.size(), 3u);
  EXPECT_EQ(samples[0].input_ids, (Ids{1, 4, 5, 6, 9, 2}));
  EXPECT_EQ(samples[0].line, 1);
  EXPECT_EQ(samples[1].input_ids, (Ids{1, 10, 11, 12, 2}));
  EXPECT_EQ(samples[1].line, 4);
  EXPECT_EQ(samples[2].input_ids, (Ids{1, 4, 8, 2}));  // the last line has no '\n'
  EXPECT_EQ(samples[2].line, 5);
  EXPECT_FALSE(samples[0].label.has_value());
  EXPECT_EQ(dataset.bytes_read(), 37u);
  EXPECT_FALSE(dataset.next().has_value());

  DatasetOptions plain;
  plain.add_special_tokens = false;
  auto first = TextDataset::open(path, tok, plain).next();
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->input_ids, (Ids{4, 5, 6, 9}));
}

TEST_F(DatasetTest, JsonlTextIdsAndLabels) {
  const Tokenizer tok = load(kWordsJson);
  const auto path = file("data.jsonl",
                         "{\"text\": \"the cat\", \"label\": 1, \"id\": \"x\"}\n"
                         "\n"
                         "{\"input_ids\": [4, 12, 9], \"label\": 0}\n");
  auto dataset = TextDataset::open(path, tok);
  EXPECT_EQ(dataset.format(), DatasetFormat::Jsonl);
  auto samples = dataset.read();
  ASSERT_EQ(samples.size(), 2u);
  EXPECT_EQ(samples[0].input_ids, (Ids{1, 4, 5, 2}));
  EXPECT_EQ(samples[0].label, 1);
  EXPECT_EQ(samples[1].input_ids, (Ids{4, 12, 9}));  // ids are taken as they are
  EXPECT_EQ(samples[1].label, 0);
  EXPECT_EQ(samples[1].line, 3);

  const TokenBatch batch = pad_batch(samples, *tok.pad_id());
  EXPECT_TRUE(at::equal(batch.input_ids, at::tensor(Ids{1, 4, 5, 2, 4, 12, 9, 3}).view({2, 4})));
  EXPECT_TRUE(
      at::equal(batch.attention_mask, at::tensor(Ids{1, 1, 1, 1, 1, 1, 1, 0}).view({2, 4})));
  EXPECT_TRUE(at::equal(batch.labels, at::tensor(Ids{1, 0})));
}

TEST_F(DatasetTest, JsonlErrorsNameFileLineAndField) {
  const Tokenizer tok = load(kWordsJson);
  const auto read_all = [&](const std::string& content) {
    return TextDataset::open(file("data.jsonl", content), tok).read();
  };
  const std::string good = "{\"text\": \"the cat\"}\n";
  EXPECT_THROW_WITH(read_all(good + "{\"txt\": \"a\"}\n"), FormatError,
                    "data.jsonl:2: expected \"text\" (string) or \"input_ids\" (array of "
                    "integers)");
  EXPECT_THROW_WITH(read_all(good + good + "{\"text\": 5}\n"), FormatError,
                    "data.jsonl:3: expected \"text\" (string)");
  EXPECT_THROW_WITH(read_all("{\"input_ids\": [1, \"2\"]}\n"), FormatError,
                    "data.jsonl:1: \"input_ids\"[1] is not an integer");
  EXPECT_THROW_WITH(read_all("{\"input_ids\": [1, 99]}\n"), FormatError,
                    "data.jsonl:1: \"input_ids\"[1] = 99 is outside the tokenizer's vocabulary");
  EXPECT_THROW_WITH(read_all("{\"input_ids\": [-1]}\n"), FormatError, "outside");
  EXPECT_THROW_WITH(read_all(good + "{\"text\": \"a\", \"label\": \"pos\"}\n"), FormatError,
                    "data.jsonl:2: expected \"label\" to be an integer");
  EXPECT_THROW_WITH(read_all(good + "{\"text\": \"a\", \"label\": 1.5}\n"), FormatError,
                    "data.jsonl:2: expected \"label\"");
  EXPECT_THROW_WITH(read_all("\n\n{\"text\": \"a\"\n"), FormatError,
                    "data.jsonl:3: not valid JSON");
  EXPECT_THROW_WITH(read_all("[1, 2]\n"), FormatError, "data.jsonl:1: expected a JSON object");
  EXPECT_THROW_WITH(read_all("{\"text\": \"a\", \"input_ids\": [1]}\n"), FormatError,
                    "data.jsonl:1: has both");
  EXPECT_THROW_WITH(TextDataset::open(dir_ / "missing.jsonl", tok), IoError, "missing.jsonl");
  // A labelled batch must be labelled throughout.
  std::vector<Sample> mixed{{{4}, 1, 1}, {{5}, std::nullopt, 2}};
  EXPECT_THROW_WITH(pad_batch(mixed, 3), ValueError, "line 2 has no \"label\"");
}

TEST_F(DatasetTest, WindowsCutTheJoinedRows) {
  const Tokenizer tok = load(kWordsJson);
  // Rows: "the cat\n", "" (a blank line), "sat on\n", "a mat\n"; joined by "\n\n", with
  // [CLS] ... [SEP] around the whole text: 1 4 5 6 7 10 8 2 (8 ids).
  const auto path = file("wiki.txt", "the cat\n \nsat on\na mat\n");
  EXPECT_EQ(token_windows(path, tok, 3), (std::vector<Ids>{{1, 4, 5}, {6, 7, 10}}));
  EXPECT_EQ(token_windows(path, tok, 8), (std::vector<Ids>{{1, 4, 5, 6, 7, 10, 8, 2}}));
  EXPECT_TRUE(token_windows(path, tok, 9).empty());
  DatasetOptions plain;
  plain.add_special_tokens = false;
  EXPECT_EQ(token_windows(path, tok, 2, plain), (std::vector<Ids>{{4, 5}, {6, 7}, {10, 8}}));
  auto windows = TokenWindows::open(path, tok, 4);
  while (windows.next()) {
  }
  EXPECT_EQ(windows.tokens_read(), 8);
  EXPECT_EQ(windows.bytes_read(), windows.size_bytes());
  // JSONL rows are the "text" values; records with only ids cannot be joined as text.
  const auto jsonl = file("rows.jsonl", "{\"text\": \"the cat\"}\n{\"text\": \"sat\"}\n");
  EXPECT_EQ(token_windows(jsonl, tok, 5), (std::vector<Ids>{{1, 4, 5, 6, 2}}));
  const auto ids_only = file("ids.jsonl", "{\"text\": \"the\"}\n{\"input_ids\": [4]}\n");
  EXPECT_THROW_WITH(token_windows(ids_only, tok, 5), FormatError,
                    "ids.jsonl:2: windows and calibration samples are cut from \"text\"");
  EXPECT_THROW_WITH(token_windows(path, tok, 0), ValueError, "seq_len");
}

// Rows of random words, blank rows and whitespace, from a fixed seed.
std::vector<std::string> random_rows(const std::vector<std::string>& words, int n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<std::string> rows;
  for (int r = 0; r < n; ++r) {
    std::string row;
    if (rng() % 4 == 0) {
      rows.push_back(row);  // the empty row of a blank line
      continue;
    }
    const int length = 1 + static_cast<int>(rng() % 12);
    for (int w = 0; w < length; ++w) {
      row += (rng() % 3 == 0) ? " " : (rng() % 5 == 0 ? "  " : "");
      row += words[rng() % words.size()];
    }
    if (rng() % 2 == 0) row += " ";
    row += "\n";
    rows.push_back(row);
  }
  return rows;
}

// The streaming encoder cut as often as it can gives the ids of one encode() of the whole
// joined text.
void expect_stream_equals_whole(const Tokenizer& tok, const std::vector<std::string>& rows,
                                bool expect_all_verified) {
  std::string joined;
  for (size_t i = 0; i < rows.size(); ++i) joined += (i > 0 ? "\n\n" : "") + rows[i];
  for (size_t chunk : {size_t{1}, size_t{40}, size_t{1000}}) {
    JoinedTextEncoder encoder(tok, JoinedTextOptions{.chunk_bytes = chunk});
    Ids ids;
    for (const auto& row : rows) {
      encoder.add_row(row);
      encoder.take(ids);
    }
    encoder.finish();
    encoder.take(ids);
    EXPECT_EQ(ids, tok.encode(joined, true)) << "chunk_bytes=" << chunk;
    if (expect_all_verified) EXPECT_EQ(encoder.unverified_cuts(), 0);
    EXPECT_GT(encoder.cuts(), chunk == 1 ? 20 : 2) << "chunk_bytes=" << chunk;
  }
}

TEST_F(DatasetTest, StreamingEqualsOneEncodeWordPiece) {
  const Tokenizer tok = load(kWordsJson);
  expect_stream_equals_whole(tok, random_rows({"the", "cat", "Sat", ".", "on", "zz"}, 300, 1),
                             true);
}

TEST_F(DatasetTest, StreamingEqualsOneEncodeByteLevelBpe) {
  const Tokenizer tok = load(kByteBpeJson);
  expect_stream_equals_whole(tok, random_rows({"ab", "a", "b", ".", "\n", "<x>", " <x> "}, 300, 2),
                             true);
}

TEST_F(DatasetTest, StreamingEqualsOneEncodeUnigram) {
  const Tokenizer tok = load(kUnigramJson);
  expect_stream_equals_whole(tok, random_rows({"ab", "a", "b", ".", "\t"}, 300, 3), true);
}

// Llama 2 style: the normalizer prepends "▁" to every text it is given, so no piece of the
// text can be tokenized on its own as it is in context. No cut verifies; the encoder keeps
// the text whole up to max_pending_bytes, and cuts there without the guarantee.
const char* const kPrependJson =
    R"({"version": "1.0", "added_tokens": [], "normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "▁"}, {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]}, "pre_tokenizer": null, "model": {"type": "BPE", "dropout": null, "unk_token": "<unk>", "ignore_merges": false, "vocab": {"<unk>": 0, "▁": 1, "a": 2, "b": 3, "▁a": 4, "\n": 5}, "merges": [["▁", "a"]]}})";

TEST_F(DatasetTest, UnverifiableCutsAreCounted) {
  const Tokenizer tok = load(kPrependJson);
  const auto rows = random_rows({"a", "b"}, 200, 4);
  std::string joined;
  for (size_t i = 0; i < rows.size(); ++i) joined += (i > 0 ? "\n\n" : "") + rows[i];
  for (size_t max_pending : {size_t{64} << 20, size_t{200}}) {
    JoinedTextEncoder encoder(
        tok, JoinedTextOptions{.chunk_bytes = 50, .max_pending_bytes = max_pending});
    Ids ids;
    for (const auto& row : rows) encoder.add_row(row);
    encoder.finish();
    encoder.take(ids);
    if (max_pending > joined.size()) {
      EXPECT_EQ(encoder.cuts(), 0);  // every check failed: the text stayed whole
      EXPECT_EQ(ids, tok.encode(joined, true));
    } else {
      EXPECT_GT(encoder.unverified_cuts(), 3);
      EXPECT_EQ(encoder.unverified_cuts(), encoder.cuts());
      EXPECT_NE(ids, tok.encode(joined, true));
    }
  }
}

TEST_F(DatasetTest, CalibrationStartsAreFixedBySeed) {
  // std::mt19937_64(0) draws 2947667278772165694, 18301848765998365067, ...; with
  // n_tokens=10, seq_len=3 there are 8 starts (no draw is rejected: 2^64 % 8 == 0), so the
  // starts are the draws mod 8. Values checked with an independent Python mt19937_64.
  EXPECT_EQ(calibration_starts(10, 4, 3, 0), (Ids{6, 3, 1, 6}));
  EXPECT_EQ(calibration_starts(10, 4, 3, 1), (Ids{0, 6, 2, 6}));
  EXPECT_EQ(calibration_starts(1000, 3, 7, 42), (Ids{748, 780, 894}));
  EXPECT_EQ(calibration_starts(1000, 50, 7, 42), calibration_starts(1000, 50, 7, 42));
  EXPECT_NE(calibration_starts(1000, 50, 7, 42), calibration_starts(1000, 50, 7, 43));
  EXPECT_EQ(calibration_starts(5, 3, 5, 9), (Ids{0, 0, 0}));
  EXPECT_THROW_WITH(calibration_starts(4, 1, 5, 0), ValueError, "fewer than seq_len=5");
}

TEST_F(DatasetTest, CalibrationSamplesAreWindowsOfTheStream) {
  const Tokenizer tok = load(kWordsJson);
  // Stream: [CLS] the cat sat on a mat . the dog ran [SEP] = 1 4 5 6 7 10 8 9 4 11 12 2.
  const auto path = file("calib.txt", "the cat sat\non a mat.\n\nthe dog ran\n");
  const auto samples = calibration_samples(path, tok, 4, 3, 0);
  // Starts from seed 0 over 12 - 3 + 1 = 10 positions (computed as in the test above).
  const Ids starts = calibration_starts(12, 4, 3, 0);
  const Ids stream{1, 4, 5, 6, 7, 10, 8, 9, 4, 11, 12, 2};
  ASSERT_EQ(samples.size(), 4u);
  for (size_t i = 0; i < samples.size(); ++i) {
    EXPECT_EQ(samples[i], Ids(stream.begin() + starts[i], stream.begin() + starts[i] + 3));
  }
  EXPECT_EQ(samples, calibration_samples(path, tok, 4, 3, 0));
  EXPECT_NE(samples, calibration_samples(path, tok, 4, 3, 1));
  EXPECT_THROW_WITH(calibration_samples(path, tok, 1, 13, 0), ValueError,
                    "calib.txt has 12 tokens, fewer than the calibration seq_len=13");
}

TEST_F(DatasetTest, PadBatchPadsRightAndMasks) {
  const TokenBatch batch = pad_batch(std::vector<Ids>{{5, 6, 7}, {8}, {}}, 0);
  EXPECT_TRUE(at::equal(batch.input_ids, at::tensor(Ids{5, 6, 7, 8, 0, 0, 0, 0, 0}).view({3, 3})));
  EXPECT_TRUE(
      at::equal(batch.attention_mask, at::tensor(Ids{1, 1, 1, 1, 0, 0, 0, 0, 0}).view({3, 3})));
  EXPECT_FALSE(batch.labels.defined());
  EXPECT_EQ(batch.input_ids.scalar_type(), at::kLong);
}

}  // namespace
}  // namespace stunt::io
