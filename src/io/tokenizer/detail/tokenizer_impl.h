#pragma once
// The assembled pipeline behind stunt::io::Tokenizer.

#include <filesystem>
#include <unordered_map>
#include <unordered_set>

#include "pipeline.h"

namespace stunt::io::tokenizer_detail {

/// A token matched in the text before the model runs (tokenizer.json "added_tokens").
struct AddedToken {
  std::string content;
  int64_t id = 0;
  bool special = false;
  bool lstrip = false;
  bool rstrip = false;
  bool single_word = false;
  bool normalized = false;  // matched in the normalized text rather than the raw text
};

/// Leftmost-longest matching of added tokens (as HF's aho-corasick with LeftmostLongest).
class AddedTokenMatcher {
 public:
  void add(std::string_view content, size_t index);
  bool empty() const { return terminal_.size() <= 1; }
  /// The longest token starting at text[pos]: (index, length), length 0 when none.
  std::pair<size_t, size_t> longest_at(std::string_view text, size_t pos) const;

 private:
  std::unordered_map<uint64_t, int64_t> edges_;
  std::vector<int64_t> terminal_{-1};
  bool first_byte_[256] = {};
};

struct TokenizerImpl {
  std::string source;  // the file, for messages
  std::unique_ptr<Normalizer> normalizer;
  std::unique_ptr<PreTokenizer> pre_tokenizer;
  std::unique_ptr<Model> model;
  std::unique_ptr<Decoder> decoder;
  std::vector<AddedToken> added_tokens;
  AddedTokenMatcher raw_matcher, normalized_matcher;
  std::unordered_map<int64_t, size_t> added_by_id;
  std::vector<int64_t> prefix_ids, suffix_ids;  // post-processor, single sequence
  std::optional<int64_t> pad_id, bos_id, eos_id;

  /// Builds the matchers and the id index from added_tokens.
  void index_added_tokens();
  /// bos/eos from the post-processor, pad/bos/eos from well-known added token names, where
  /// not already set.
  void guess_special_ids();
  std::vector<int64_t> encode(std::string_view text, bool add_special_tokens) const;
  std::string decode(const std::vector<int64_t>& ids, bool skip_special_tokens) const;
};

std::shared_ptr<TokenizerImpl> load_tokenizer_json(const std::filesystem::path& path);
/// The same from tokenizer.json text; `source` names it in errors.
std::shared_ptr<TokenizerImpl> parse_tokenizer_json(const std::string& bytes,
                                                    const std::string& source);
std::shared_ptr<TokenizerImpl> load_sentencepiece_model(const std::filesystem::path& path);
/// The whole file; stunt::IoError when it cannot be read.
std::string read_file_bytes(const std::filesystem::path& path);

}  // namespace stunt::io::tokenizer_detail
