#pragma once
/// Tokenizers compatible with Hugging Face `tokenizers`: a tokenizer.json (WordPiece, BPE,
/// Unigram with their normalizers, pre-tokenizers, post-processors and decoders) or a
/// SentencePiece .model, giving the same ids as the Python library.

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace stunt::io {

namespace tokenizer_detail {
struct TokenizerImpl;
}

/// An immutable tokenizer; cheap to copy (shared state), safe to use from several threads.
///
/// Truncation and padding settings in tokenizer.json are ignored: encode() returns every id
/// of the text, and the caller chunks or pads. A SentencePiece .model adds no special tokens
/// (as SentencePieceProcessor.encode), whatever add_special_tokens says.
class Tokenizer {
 public:
  /// Reads a tokenizer.json, a SentencePiece .model (a protobuf; only Unigram models), or the
  /// vocabulary of a GGUF model file (see gguf_tokenizer.h).
  /// Throws stunt::IoError when unreadable, stunt::FormatError naming the file and JSON path
  /// when malformed or unsupported.
  static Tokenizer from_file(const std::filesystem::path& path);
  /// A Hugging Face folder: tokenizer.json, else spiece.model / tokenizer.model; pad, bos and
  /// eos tokens named in tokenizer_config.json or special_tokens_map.json take precedence.
  static Tokenizer from_folder(const std::filesystem::path& hf_folder);
  /// A tokenizer.json given as text; `source` names it in error messages.
  static Tokenizer from_json(const std::string& json_text, const std::string& source);
  /// from_folder for a folder, else from_file.
  static Tokenizer from_path(const std::filesystem::path& path);

  /// The ids of `text` (UTF-8; ill-formed bytes are read as U+FFFD). With add_special_tokens,
  /// the post-processor's tokens are added ([CLS] ... [SEP], <|begin_of_text|> ..., ... </s>).
  std::vector<int64_t> encode(std::string_view text, bool add_special_tokens = true) const;
  /// Text of `ids`, through the tokenizer's decoder (best effort for exotic decoders).
  std::string decode(const std::vector<int64_t>& ids, bool skip_special_tokens = true) const;

  /// Number of ids, added tokens included (the largest id + 1).
  int64_t vocab_size() const;
  std::optional<int64_t> token_to_id(std::string_view token) const;
  /// The token of `id`, or nothing when out of range.
  std::optional<std::string> id_to_token(int64_t id) const;
  std::optional<int64_t> pad_id() const;
  std::optional<int64_t> bos_id() const;
  std::optional<int64_t> eos_id() const;
  /// The model: "WordPiece", "BPE" or "Unigram".
  std::string kind() const;

 private:
  explicit Tokenizer(std::shared_ptr<const tokenizer_detail::TokenizerImpl> impl);
  std::shared_ptr<const tokenizer_detail::TokenizerImpl> impl_;
};

}  // namespace stunt::io
