#pragma once
// The stages of a tokenizer, as in Hugging Face tokenizers: normalizer → pre-tokenizer → model
// → post-processor, and a decoder for the way back. Private to src/io/tokenizer.

#include <nlohmann/json.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace stunt::io::tokenizer_detail {

/// A JSON value with the file and the JSON path it came from, so that every error names both.
class JsonNode {
 public:
  JsonNode(const nlohmann::json& value, std::string path, const std::string& file)
      : value_(&value), path_(std::move(path)), file_(&file) {}
  const nlohmann::json& value() const { return *value_; }
  const std::string& path() const { return path_; }
  const std::string& file() const { return *file_; }
  /// The member `key` of this object; an error when it is missing.
  JsonNode at(std::string_view key) const;
  /// The member `key`, or nothing when it is missing or null.
  std::optional<JsonNode> find(std::string_view key) const;
  JsonNode at(size_t index) const;
  size_t size() const;  // of an array; an error for other types
  std::string as_string() const;
  bool as_bool() const;
  int64_t as_int() const;
  double as_double() const;
  /// `key` as a string / bool / int when present and not null, else `fallback`.
  std::string get_string(std::string_view key, std::string fallback) const;
  bool get_bool(std::string_view key, bool fallback) const;
  int64_t get_int(std::string_view key, int64_t fallback) const;
  /// Throws stunt::FormatError: "<file>: <path> <message>".
  [[noreturn]] void fail(const std::string& message) const;

 private:
  void expect(nlohmann::json::value_t type, const char* type_name) const;
  const nlohmann::json* value_;
  std::string path_;
  const std::string* file_;
};

/// A part of the text between added tokens, or a word produced by a pre-tokenizer.
struct Piece {
  std::string text;
  bool at_start = false;  // begins at offset 0 of the input (Metaspace prepend_scheme "first")
};

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual void normalize(std::string& text) const = 0;
};

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  /// Replaces `pieces` with the words they split into; empty words are dropped by the caller.
  virtual void pre_tokenize(std::vector<Piece>& pieces) const = 0;
};

/// Splits a word into ids (WordPiece, BPE, Unigram).
class Model {
 public:
  virtual ~Model() = default;
  virtual void tokenize(std::string_view word, std::vector<int64_t>& ids) const = 0;
  virtual std::optional<int64_t> token_to_id(std::string_view token) const = 0;
  /// The token of id; empty when out of range.
  virtual std::string_view id_to_token(int64_t id) const = 0;
  virtual int64_t vocab_size() const = 0;
  virtual std::string kind() const = 0;
};

/// Turns tokens back into text pieces (HF decode_chain); the results are concatenated.
class Decoder {
 public:
  virtual ~Decoder() = default;
  virtual void decode(std::vector<std::string>& tokens) const = 0;
};

std::unique_ptr<Normalizer> make_normalizer(const JsonNode& node);
std::unique_ptr<PreTokenizer> make_pre_tokenizer(const JsonNode& node);
std::unique_ptr<Decoder> make_decoder(const JsonNode& node);
std::unique_ptr<Model> make_wordpiece(const JsonNode& node);
std::unique_ptr<Model> make_bpe(const JsonNode& node);
std::unique_ptr<Model> make_unigram(const JsonNode& node);

/// Options of a Unigram model that differ between HF tokenizers and SentencePiece itself.
struct UnigramPiece {
  std::string piece;
  double score = 0;
  enum class Type : uint8_t {
    Normal = 1,
    Unknown = 2,
    Control = 3,
    UserDefined = 4,
    Unused = 5,
    Byte = 6
  };
  Type type = Type::Normal;
};
struct UnigramOptions {
  std::optional<int64_t> unk_id;
  bool byte_fallback = false;
  /// SentencePiece's own rules: scores in float, control and unused pieces never matched,
  /// user-defined pieces scored by length, unknown score from normal pieces only.
  bool sentencepiece_rules = false;
};
std::unique_ptr<Model> make_unigram(std::vector<UnigramPiece> pieces,
                                    const UnigramOptions& options);

/// SentencePiece's normalizer: precompiled charsmap (double-array trie + NUL-terminated
/// replacement strings), then the whitespace rules of NormalizerSpec.
struct SentencePieceNormalizerOptions {
  std::string precompiled_charsmap;  // may be empty (identity)
  bool add_dummy_prefix = true;
  bool remove_extra_whitespaces = true;
  bool escape_whitespaces = true;
};
std::unique_ptr<Normalizer> make_sentencepiece_normalizer(
    const SentencePieceNormalizerOptions& options, const std::string& source);
/// HF's Precompiled normalizer (same charsmap, applied per grapheme as spm_precompiled does).
std::unique_ptr<Normalizer> make_precompiled_normalizer(const std::string& charsmap,
                                                        const std::string& source);
/// Metaspace + ByteFallback + Fuse + Strip, the decoder SentencePiece pieces need.
std::unique_ptr<Decoder> make_sentencepiece_decoder();

/// Decodes standard base64 (tokenizer.json stores precompiled_charsmap so).
std::string base64_decode(const JsonNode& node);

}  // namespace stunt::io::tokenizer_detail
