// Unigram language model (SentencePiece): Viterbi segmentation of a word into the pieces with
// the highest total log probability; unknown characters get the lowest score minus a penalty.
#include "detail/pipeline.h"
#include "detail/unicode.h"
#include "detail/vocab.h"
#include "stunt/core/error.h"

namespace stunt::io::tokenizer_detail {
namespace {

// SentencePiece unigram_model.h kUnkPenalty, also used by HF tokenizers.
constexpr double kUnkPenalty = 10.0;

// A byte trie over the pieces; children in one hash map keyed by (node, byte).
class PieceTrie {
 public:
  PieceTrie() : ids_(1, -1) {}
  void insert(std::string_view key, int64_t id) {
    int64_t node = 0;
    for (unsigned char c : key) {
      auto [it, inserted] = children_.emplace(edge(node, c), static_cast<int64_t>(ids_.size()));
      if (inserted) ids_.push_back(-1);
      node = it->second;
    }
    if (ids_[node] < 0) ids_[node] = id;
  }
  // Calls found(id, length) for every piece that is a prefix of text, shortest first.
  template <typename F>
  void prefixes(std::string_view text, F found) const {
    int64_t node = 0;
    for (size_t i = 0; i < text.size(); ++i) {
      auto it = children_.find(edge(node, static_cast<unsigned char>(text[i])));
      if (it == children_.end()) return;
      node = it->second;
      if (ids_[node] >= 0) found(ids_[node], i + 1);
    }
  }

 private:
  static uint64_t edge(int64_t node, unsigned char c) {
    return (static_cast<uint64_t>(node) << 8) | c;
  }
  std::unordered_map<uint64_t, int64_t> children_;
  std::vector<int64_t> ids_;
};

class Unigram : public Model {
 public:
  Unigram(std::vector<UnigramPiece> pieces, const UnigramOptions& options)
      : pieces_(std::move(pieces)), options_(options) {
    double min_score = std::numeric_limits<double>::infinity();
    double max_score = -std::numeric_limits<double>::infinity();
    for (size_t id = 0; id < pieces_.size(); ++id) {
      const UnigramPiece& p = pieces_[id];
      vocab_.push_back(p.piece);
      const bool normal = p.type == UnigramPiece::Type::Normal;
      if (options_.sentencepiece_rules) {
        // SentencePiece matches normal, user-defined and unused pieces (unused ones are then
        // skipped); scores come from normal pieces only.
        if (normal || p.type == UnigramPiece::Type::UserDefined ||
            p.type == UnigramPiece::Type::Unused) {
          trie_.insert(p.piece, static_cast<int64_t>(id));
        }
        if (normal) {
          min_score = std::min(min_score, p.score);
          max_score = std::max(max_score, p.score);
        }
      } else {
        trie_.insert(p.piece, static_cast<int64_t>(id));
        min_score = std::min(min_score, p.score);
      }
    }
    unk_score_ = min_score - kUnkPenalty;
    max_score_ = max_score;
  }

  void tokenize(std::string_view word, std::vector<int64_t>& ids) const override {
    if (word.empty()) return;
    if (options_.sentencepiece_rules) {
      viterbi<float>(word, ids);
    } else {
      viterbi<double>(word, ids);
    }
  }
  std::optional<int64_t> token_to_id(std::string_view token) const override {
    return vocab_.find(token);
  }
  std::string_view id_to_token(int64_t id) const override { return vocab_.token(id); }
  int64_t vocab_size() const override { return vocab_.size(); }
  std::string kind() const override { return "Unigram"; }

 private:
  template <typename Score>
  struct Node {
    int64_t id = -1;
    Score score = 0;
    int64_t starts_at = -1;
  };

  // SentencePiece EncodeOptimized / HF Unigram::encode_optimized; ties keep the first
  // (shortest) candidate, as both do.
  template <typename Score>
  void viterbi(std::string_view word, std::vector<int64_t>& ids) const {
    const size_t size = word.size();
    std::vector<Node<Score>> best(size + 1);
    best[0].starts_at = 0;
    for (size_t start = 0; start < size;) {
      const Score here = best[start].score;
      const size_t length = std::max<size_t>(1, utf8_length_at(word, start));
      const size_t char_length = std::min(length, size - start);
      bool has_single = false;
      trie_.prefixes(word.substr(start), [&](int64_t id, size_t n) {
        const UnigramPiece& p = pieces_[id];
        Score score = static_cast<Score>(p.score);
        if (options_.sentencepiece_rules) {
          if (p.type == UnigramPiece::Type::Unused) return;
          if (p.type == UnigramPiece::Type::UserDefined) {
            score =
                static_cast<Score>(static_cast<float>(n) * static_cast<float>(max_score_) - 0.1f);
          }
        }
        Node<Score>& target = best[start + n];
        const Score candidate = score + here;
        if (target.starts_at < 0 || candidate > target.score) {
          target = {id, candidate, static_cast<int64_t>(start)};
        }
        if (n == char_length) has_single = true;
      });
      if (!has_single) {
        if (!options_.unk_id) {
          throw ValueError(str("Unigram tokenizer: the text contains \"",
                               printable(word.substr(start, char_length)),
                               "\", which no piece covers, and the model has no unk_id"));
        }
        Node<Score>& target = best[start + char_length];
        const Score candidate = static_cast<Score>(unk_score_) + here;
        if (target.starts_at < 0 || candidate > target.score) {
          target = {*options_.unk_id, candidate, static_cast<int64_t>(start)};
        }
      }
      start += char_length;
    }
    // Walk back; runs of unknown pieces become one unknown token (or its bytes).
    struct Span {
      int64_t id;
      size_t begin, end;
    };
    std::vector<Span> spans;
    for (size_t end = size; end > 0;) {
      const Node<Score>& node = best[end];
      const size_t begin = static_cast<size_t>(node.starts_at);
      if (node.id == options_.unk_id && !spans.empty() && spans.back().id == node.id) {
        spans.back().begin = begin;
      } else {
        spans.push_back({node.id, begin, end});
      }
      end = begin;
    }
    for (auto it = spans.rbegin(); it != spans.rend(); ++it) {
      if (it->id == options_.unk_id && options_.byte_fallback) {
        std::vector<int64_t> bytes;
        static const char* kHex = "0123456789ABCDEF";
        for (size_t k = it->begin; k < it->end; ++k) {
          const auto b = static_cast<unsigned char>(word[k]);
          const char code[] = {'<', '0', 'x', kHex[b >> 4], kHex[b & 15], '>', '\0'};
          auto id = vocab_.find(code);
          if (!id) break;
          bytes.push_back(*id);
        }
        if (bytes.size() == it->end - it->begin) {
          ids.insert(ids.end(), bytes.begin(), bytes.end());
          continue;
        }
      }
      ids.push_back(it->id);
    }
  }

  std::vector<UnigramPiece> pieces_;
  UnigramOptions options_;
  Vocab vocab_;
  PieceTrie trie_;
  double unk_score_ = 0;
  double max_score_ = 0;
};

}  // namespace

std::unique_ptr<Model> make_unigram(std::vector<UnigramPiece> pieces,
                                    const UnigramOptions& options) {
  return std::make_unique<Unigram>(std::move(pieces), options);
}

std::unique_ptr<Model> make_unigram(const JsonNode& node) {
  const JsonNode vocab = node.at("vocab");
  std::vector<UnigramPiece> pieces;
  pieces.reserve(vocab.size());
  for (size_t i = 0; i < vocab.size(); ++i) {
    const JsonNode entry = vocab.at(i);
    if (entry.size() != 2) entry.fail("must be a pair [piece, score]");
    pieces.push_back({entry.at(size_t{0}).as_string(), entry.at(size_t{1}).as_double(),
                      UnigramPiece::Type::Normal});
  }
  UnigramOptions options;
  if (auto unk = node.find("unk_id")) {
    options.unk_id = unk->as_int();
    if (*options.unk_id < 0 || static_cast<size_t>(*options.unk_id) >= pieces.size()) {
      unk->fail(str("is ", *options.unk_id, ", outside the vocab of ", pieces.size(), " pieces"));
    }
  }
  options.byte_fallback = node.get_bool("byte_fallback", false);
  return make_unigram(std::move(pieces), options);
}

}  // namespace stunt::io::tokenizer_detail
