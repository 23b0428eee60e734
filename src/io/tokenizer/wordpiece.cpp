// WordPiece (BERT): greedy longest-match-first over each word, continuation pieces prefixed
// with "##"; a word that cannot be covered becomes one unknown token.
#include "detail/pipeline.h"
#include "detail/unicode.h"
#include "detail/vocab.h"
#include "stunt/core/error.h"

namespace stunt::io::tokenizer_detail {

thread_local std::string Vocab::lookup_;

Vocab Vocab::from_json_object(const JsonNode& node) {
  if (!node.value().is_object())
    node.fail(str("must be an object {token: id}, got ", node.value().type_name()));
  Vocab vocab;
  const size_t n = node.value().size();
  vocab.tokens_.resize(n);
  std::vector<bool> seen(n, false);
  for (const auto& [token, id_value] : node.value().items()) {
    const JsonNode entry(id_value, str(node.path(), "[\"", printable(token), "\"]"), node.file());
    const int64_t id = entry.as_int();
    if (id < 0 || static_cast<size_t>(id) >= n || seen[id]) {
      entry.fail(str("has id ", id, "; ids must be unique and in [0, ", n, ")"));
    }
    seen[id] = true;
    vocab.tokens_[id] = token;
    vocab.ids_.emplace(token, id);
  }
  return vocab;
}

void Vocab::push_back(std::string token) {
  ids_.emplace(token, static_cast<int64_t>(tokens_.size()));
  tokens_.push_back(std::move(token));
}

namespace {

class WordPiece : public Model {
 public:
  WordPiece(Vocab vocab, int64_t unk_id, std::string prefix, size_t max_chars)
      : vocab_(std::move(vocab)),
        unk_id_(unk_id),
        prefix_(std::move(prefix)),
        max_chars_(max_chars) {}

  void tokenize(std::string_view word, std::vector<int64_t>& ids) const override {
    size_t chars = 0;
    for (size_t i = 0; i < word.size(); ++chars) next_code_point(word, i);
    if (chars > max_chars_) {
      ids.push_back(unk_id_);
      return;
    }
    const size_t first = ids.size();
    std::string candidate;
    for (size_t start = 0; start < word.size();) {
      std::optional<int64_t> found;
      size_t end = word.size();
      while (end > start) {
        candidate.clear();
        if (start > 0) candidate += prefix_;
        candidate.append(word.substr(start, end - start));
        if ((found = vocab_.find(candidate))) break;
        do --end;  // back to the previous character boundary
        while (end > start && (static_cast<unsigned char>(word[end]) & 0xc0) == 0x80);
      }
      if (!found) {
        ids.resize(first);
        ids.push_back(unk_id_);
        return;
      }
      ids.push_back(*found);
      start = end;
    }
  }
  std::optional<int64_t> token_to_id(std::string_view token) const override {
    return vocab_.find(token);
  }
  std::string_view id_to_token(int64_t id) const override { return vocab_.token(id); }
  int64_t vocab_size() const override { return vocab_.size(); }
  std::string kind() const override { return "WordPiece"; }

 private:
  Vocab vocab_;
  int64_t unk_id_;
  std::string prefix_;
  size_t max_chars_;
};

}  // namespace

std::unique_ptr<Model> make_wordpiece(const JsonNode& node) {
  Vocab vocab = Vocab::from_json_object(node.at("vocab"));
  const std::string unk = node.get_string("unk_token", "[UNK]");
  auto unk_id = vocab.find(unk);
  if (!unk_id) node.at("unk_token").fail(str("\"", printable(unk), "\" is not in model.vocab"));
  const int64_t max_chars = node.get_int("max_input_chars_per_word", 100);
  if (max_chars <= 0) node.at("max_input_chars_per_word").fail("must be positive");
  return std::make_unique<WordPiece>(std::move(vocab), *unk_id,
                                     node.get_string("continuing_subword_prefix", "##"),
                                     static_cast<size_t>(max_chars));
}

}  // namespace stunt::io::tokenizer_detail
