#pragma once
/// Datasets for calibration and evaluation: one sample per text line, JSONL records (text or
/// token ids, optional label), fixed-length token windows over a whole file (perplexity, as
/// GPTQ evaluates wikitext-2), and seeded calibration samples. Files are streamed line by line
/// with a bounded buffer; nothing reads a file whole.
///
/// Rows of a text file (the window and calibration modes). A text file is read the way the
/// Hugging Face `wikitext` dataset builder reads wiki.test.tokens / wiki.test.raw, which is
/// what GPTQ and llm-compressor load (`wikitext-2-raw-v1`, or `wikitext-2-v1` for the
/// tokenized release carried in data/wikitext-2): each line of the file is one row,
/// including its '\n'; a line that is empty or only whitespace (Python's str.strip()) becomes
/// the empty row "". Lines end at '\n'; a '\r' just before it is dropped, as Python's
/// universal newlines do. A JSONL file's rows are its "text" values, as they are.
/// The text that is tokenized is then "\n\n".join(rows), once, as GPTQ's
/// `tokenizer("\n\n".join(data["text"]))` does: special tokens (if asked for) only at the very
/// start and end of the whole text.

#include <ATen/ATen.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "stunt/io/tokenizer.h"

namespace stunt::io {

/// How a file holds its samples.
enum class DatasetFormat {
  Auto,   // Jsonl for *.jsonl and *.ndjson, else Lines
  Lines,  // plain UTF-8 text
  Jsonl,  // one JSON object per line: "text" (string) or "input_ids" (ints), optional "label"
};

struct DatasetOptions {
  DatasetFormat format = DatasetFormat::Auto;
  /// Add the tokenizer's post-processor tokens ([CLS] ... [SEP], <bos> ...): to each sample in
  /// TextDataset, once around the whole text in windows and calibration samples.
  bool add_special_tokens = true;
  /// Windows and calibration samples tokenize the text in chunks of about this many bytes
  /// (see JoinedTextEncoder); the ids do not depend on it.
  size_t chunk_bytes = size_t{1} << 20;
  /// TextDataset: cut each text sample to at most this many ids (0: no limit) as transformers'
  /// truncation=True does: the text's tokens are cut, the special tokens around them kept.
  /// Samples given as input_ids are cut at the end.
  int64_t max_length = 0;
};

/// The post-processor's tokens around a single text: encode(text, true) is
/// prefix + encode(text, false) + suffix.
std::pair<std::vector<int64_t>, std::vector<int64_t>> special_token_affixes(
    const Tokenizer& tokenizer);

/// tokenizer.encode(text), cut to at most `max_length` ids (0: no limit) as transformers'
/// truncation=True cuts: the text's tokens are cut, the special tokens around them kept.
std::vector<int64_t> encode_truncated(const Tokenizer& tokenizer, std::string_view text,
                                      int64_t max_length, bool add_special_tokens = true);

/// Streams a JSONL file whose records carry fields of the caller's choosing (pairs, targets):
/// calls `visit(record, line)` for every non-blank line, in order, with the 1-based line.
/// FormatError naming file and line for a line that is not a JSON object.
void for_each_jsonl_record(
    const std::filesystem::path& path,
    const std::function<void(const nlohmann::json& record, int64_t line)>& visit);

/// One sample of a TextDataset.
struct Sample {
  std::vector<int64_t> input_ids;
  std::optional<int64_t> label;  // JSONL "label"
  int64_t line = 0;              // 1-based line of the file it came from
};

/// A file read as samples: each non-blank line of a text file (lines that are empty or only
/// whitespace are skipped; the line's own '\n' / "\r\n" is not part of it), or each JSONL
/// record (blank lines skipped). JSONL keys other than text, input_ids and label are ignored.
/// Errors name the file, line and field: `data.jsonl:17: expected "text" (string) or
/// "input_ids" (array of integers)`.
class TextDataset {
 public:
  static TextDataset open(const std::filesystem::path& path, const Tokenizer& tokenizer,
                          const DatasetOptions& options = {});
  TextDataset(TextDataset&&) noexcept;
  TextDataset& operator=(TextDataset&&) noexcept;
  ~TextDataset();

  /// The next sample, or nothing at the end of the file.
  std::optional<Sample> next();
  /// Up to `max_samples` further samples (all when negative).
  std::vector<Sample> read(int64_t max_samples = -1);
  /// Bytes of the file consumed so far, and its size, for a progress bar.
  uint64_t bytes_read() const;
  uint64_t size_bytes() const;
  /// The format in use (Auto resolved).
  DatasetFormat format() const;

 private:
  struct State;
  explicit TextDataset(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

/// Tuning of JoinedTextEncoder; the defaults suit every use.
struct JoinedTextOptions {
  bool add_special_tokens = true;
  /// Text is tokenized in chunks of about this many bytes (bytes).
  size_t chunk_bytes = size_t{1} << 20;
  /// When no verified cut point is found, text is still cut at this size (bytes); such cuts
  /// are counted in unverified_cuts().
  size_t max_pending_bytes = size_t{64} << 20;
};

/// Tokenizes "\n\n".join(rows) incrementally, giving the same ids as one encode() of the
/// joined text. The text is cut only at the start of a whitespace run next to a row boundary
/// (where the WordPiece, byte-level BPE and Metaspace pre-tokenizers split anyway), and only
/// after checking, on the rows around the cut, that encode(left + right) equals encode(left)
/// followed by encode(right) (this catches prefix spaces, lstrip/rstrip added tokens, and
/// regexes such as Llama 3's that glue newlines to punctuation). A tokenizer for which no
/// cut verifies (e.g. a normalizer that prepends "▁" to every text) is cut at
/// max_pending_bytes without the guarantee; unverified_cuts() says how often.
class JoinedTextEncoder {
 public:
  explicit JoinedTextEncoder(Tokenizer tokenizer, JoinedTextOptions options = {});
  /// Appends a row (joined to the previous one by "\n\n").
  void add_row(std::string_view row);
  /// Ends the text: the rest is tokenized and the special suffix added.
  void finish();
  /// Moves the ids that are final so far to the end of `out`.
  void take(std::vector<int64_t>& out);
  /// Cuts made so far (the text was tokenized in cuts() + 1 pieces), and those among them
  /// that could not be verified.
  int64_t cuts() const { return cuts_; }
  int64_t unverified_cuts() const { return unverified_cuts_; }

 private:
  void cut_if_due();
  bool verified(size_t cut) const;
  void emit(size_t cut);

  Tokenizer tokenizer_;
  JoinedTextOptions options_;
  std::vector<int64_t> prefix_, suffix_;  // the post-processor's tokens around a text
  std::string pending_;                   // text not yet tokenized
  std::vector<size_t> row_starts_;        // offsets in pending_ of the rows it holds
  std::vector<int64_t> ready_;
  size_t next_try_bytes_ = 0;  // no cut is tried before pending_ has this size
  bool started_ = false, finished_ = false;
  int64_t cuts_ = 0, unverified_cuts_ = 0;
};

/// Consecutive non-overlapping windows of seq_len ids over the tokenized "\n\n"-joined rows
/// of a file: windows [i*seq_len, (i+1)*seq_len) for i < n_tokens / seq_len (the remainder is
/// dropped), as GPTQ's wikitext-2 perplexity evaluation.
class TokenWindows {
 public:
  static TokenWindows open(const std::filesystem::path& path, const Tokenizer& tokenizer,
                           int64_t seq_len, const DatasetOptions& options = {});
  TokenWindows(TokenWindows&&) noexcept;
  TokenWindows& operator=(TokenWindows&&) noexcept;
  ~TokenWindows();

  /// The next window, or nothing at the end.
  std::optional<std::vector<int64_t>> next();
  uint64_t bytes_read() const;
  uint64_t size_bytes() const;
  /// Ids produced so far (all of them once next() has returned nothing).
  int64_t tokens_read() const;
  int64_t unverified_cuts() const;

 private:
  struct State;
  explicit TokenWindows(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

/// All windows of a file (see TokenWindows).
std::vector<std::vector<int64_t>> token_windows(const std::filesystem::path& path,
                                                const Tokenizer& tokenizer, int64_t seq_len,
                                                const DatasetOptions& options = {});

/// Start offsets (in tokens) of `count` windows of seq_len tokens in a stream of n_tokens:
/// each drawn independently and uniformly from [0, n_tokens - seq_len] with std::mt19937_64
/// seeded with `seed`, by rejection sampling (no std::uniform_int_distribution), so the same
/// seed gives the same starts on every machine. Windows may overlap, as in GPTQ.
std::vector<int64_t> calibration_starts(int64_t n_tokens, int64_t count, int64_t seq_len,
                                        uint64_t seed);

/// `count` calibration samples of seq_len ids: the windows at calibration_starts() of the
/// file's token stream (the same stream as token_windows), GPTQ's way of sampling C4 and
/// wikitext-2. Two streaming passes over the file (one to count, one to collect); memory is
/// count * seq_len ids. Throws ValueError when the file has fewer than seq_len tokens.
std::vector<std::vector<int64_t>> calibration_samples(const std::filesystem::path& path,
                                                      const Tokenizer& tokenizer, int64_t count,
                                                      int64_t seq_len, uint64_t seed,
                                                      const DatasetOptions& options = {});

/// A padded batch: input_ids and attention_mask int64 [b, s]; labels int64 [b] when the
/// samples have labels, else undefined.
struct TokenBatch {
  at::Tensor input_ids;
  at::Tensor attention_mask;
  at::Tensor labels;
};

/// Right-pads `samples` to the longest with pad_id; the mask is 1 on ids, 0 on padding.
TokenBatch pad_batch(const std::vector<std::vector<int64_t>>& samples, int64_t pad_id);
/// As above, with labels when every sample has one (ValueError when only some do).
TokenBatch pad_batch(const std::vector<Sample>& samples, int64_t pad_id);

}  // namespace stunt::io
