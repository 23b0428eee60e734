// Byte-pair encoding: each word starts as its characters (or byte-fallback tokens) and the
// pair with the lowest merge rank is merged until none is left (as HF tokenizers' Word).
#include <mutex>
#include <queue>

#include "detail/pipeline.h"
#include "detail/unicode.h"
#include "detail/vocab.h"
#include "stunt/core/error.h"

namespace stunt::io::tokenizer_detail {
namespace {

// Words longer than this skip the cache; HF caps its cache at 10,000 entries, so do we.
constexpr size_t kCacheMaxWordBytes = 256;
constexpr size_t kCacheCapacity = 10000;

struct BpeOptions {
  std::optional<int64_t> unk_id;
  std::string continuing_subword_prefix;
  std::string end_of_word_suffix;
  bool fuse_unk = false;
  bool byte_fallback = false;
  bool ignore_merges = false;
};

class Bpe : public Model {
 public:
  struct Merge {
    int32_t rank;
    int32_t new_id;
  };
  Bpe(Vocab vocab, std::unordered_map<uint64_t, Merge> merges, BpeOptions options)
      : vocab_(std::move(vocab)), merges_(std::move(merges)), options_(std::move(options)) {}

  static uint64_t key(int64_t a, int64_t b) {
    return (static_cast<uint64_t>(a) << 32) | static_cast<uint32_t>(b);
  }

  void tokenize(std::string_view word, std::vector<int64_t>& ids) const override {
    if (options_.ignore_merges) {
      if (auto id = vocab_.find(word)) {
        ids.push_back(*id);
        return;
      }
    }
    const bool cacheable = word.size() <= kCacheMaxWordBytes;
    if (cacheable) {
      std::lock_guard<std::mutex> lock(cache_mutex_);
      auto it = cache_.find(std::string(word));
      if (it != cache_.end()) {
        ids.insert(ids.end(), it->second.begin(), it->second.end());
        return;
      }
    }
    const size_t first = ids.size();
    merge_word(word, ids);
    if (cacheable) {
      std::lock_guard<std::mutex> lock(cache_mutex_);
      if (cache_.size() < kCacheCapacity) {
        cache_.emplace(std::string(word), std::vector<int64_t>(ids.begin() + first, ids.end()));
      }
    }
  }
  std::optional<int64_t> token_to_id(std::string_view token) const override {
    return vocab_.find(token);
  }
  std::string_view id_to_token(int64_t id) const override { return vocab_.token(id); }
  int64_t vocab_size() const override { return vocab_.size(); }
  std::string kind() const override { return "BPE"; }

 private:
  struct Symbol {
    int64_t id;
    int64_t prev, next;
    bool removed;
  };
  struct Candidate {
    int32_t rank;
    int64_t pos;
    int32_t new_id;
    bool operator>(const Candidate& o) const {
      return rank != o.rank ? rank > o.rank : pos > o.pos;
    }
  };

  void merge_word(std::string_view word, std::vector<int64_t>& ids) const {
    std::vector<int64_t> initial;
    std::optional<int64_t> pending_unk;
    std::string s;
    for (size_t i = 0; i < word.size();) {
      const size_t start = i;
      next_code_point(word, i);
      s.clear();
      if (start > 0) s += options_.continuing_subword_prefix;
      s.append(word.substr(start, i - start));
      if (i == word.size()) s += options_.end_of_word_suffix;
      if (auto id = vocab_.find(s)) {
        if (pending_unk) initial.push_back(*pending_unk), pending_unk.reset();
        initial.push_back(*id);
        continue;
      }
      if (options_.byte_fallback) {
        std::vector<int64_t> bytes;
        static const char* kHex = "0123456789ABCDEF";
        for (unsigned char b : s) {
          const char code[] = {'<', '0', 'x', kHex[b >> 4], kHex[b & 15], '>', '\0'};
          auto id = vocab_.find(code);
          if (!id) break;
          bytes.push_back(*id);
        }
        if (bytes.size() == s.size()) {
          initial.insert(initial.end(), bytes.begin(), bytes.end());
          continue;
        }
      }
      if (options_.unk_id) {
        if (pending_unk && !options_.fuse_unk) initial.push_back(*pending_unk);
        pending_unk = options_.unk_id;
      }
    }
    if (pending_unk) initial.push_back(*pending_unk);

    std::vector<Symbol> symbols(initial.size());
    for (size_t k = 0; k < initial.size(); ++k) {
      symbols[k] = {initial[k], static_cast<int64_t>(k) - 1,
                    k + 1 < initial.size() ? static_cast<int64_t>(k + 1) : -1, false};
    }
    std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> queue;
    auto push_pair = [&](int64_t pos) {
      const int64_t next = symbols[pos].next;
      if (next < 0) return;
      auto it = merges_.find(key(symbols[pos].id, symbols[next].id));
      if (it != merges_.end()) queue.push({it->second.rank, pos, it->second.new_id});
    };
    for (size_t k = 0; k + 1 < symbols.size(); ++k) push_pair(static_cast<int64_t>(k));
    while (!queue.empty()) {
      const Candidate top = queue.top();
      queue.pop();
      Symbol& left = symbols[top.pos];
      if (left.removed || left.next < 0) continue;
      Symbol& right = symbols[left.next];
      auto it = merges_.find(key(left.id, right.id));
      if (it == merges_.end() || it->second.new_id != top.new_id) continue;  // stale entry
      left.id = top.new_id;
      right.removed = true;
      left.next = right.next;
      if (left.next >= 0) symbols[left.next].prev = top.pos;
      if (left.prev >= 0) push_pair(left.prev);
      push_pair(top.pos);
    }
    for (const Symbol& symbol : symbols)
      if (!symbol.removed) ids.push_back(symbol.id);
  }

  Vocab vocab_;
  std::unordered_map<uint64_t, Merge> merges_;
  BpeOptions options_;
  mutable std::mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<int64_t>> cache_;
};

}  // namespace

std::unique_ptr<Model> make_bpe(const JsonNode& node) {
  if (auto dropout = node.find("dropout")) {
    if (dropout->as_double() != 0.0)
      dropout->fail("must be null or 0; BPE dropout is not supported");
  }
  Vocab vocab = Vocab::from_json_object(node.at("vocab"));
  BpeOptions options;
  options.continuing_subword_prefix = node.get_string("continuing_subword_prefix", "");
  options.end_of_word_suffix = node.get_string("end_of_word_suffix", "");
  options.fuse_unk = node.get_bool("fuse_unk", false);
  options.byte_fallback = node.get_bool("byte_fallback", false);
  options.ignore_merges = node.get_bool("ignore_merges", false);
  if (auto unk = node.find("unk_token")) {
    options.unk_id = vocab.find(unk->as_string());
    if (!options.unk_id)
      unk->fail(str("\"", printable(unk->as_string()), "\" is not in model.vocab"));
  }
  const JsonNode merges = node.at("merges");
  std::unordered_map<uint64_t, Bpe::Merge> ranks;
  ranks.reserve(merges.size());
  const size_t prefix_length = options.continuing_subword_prefix.size();
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const JsonNode entry = merges.at(rank);
    std::string a, b;
    if (entry.value().is_string()) {
      const std::string line = entry.as_string();
      const size_t space = line.find(' ');
      if (space == std::string::npos || line.find(' ', space + 1) != std::string::npos) {
        entry.fail(str("\"", printable(line), "\" must be two tokens separated by one space"));
      }
      a = line.substr(0, space);
      b = line.substr(space + 1);
    } else {
      if (entry.size() != 2) entry.fail("must be a pair [a, b]");
      a = entry.at(size_t{0}).as_string();
      b = entry.at(size_t{1}).as_string();
    }
    auto a_id = vocab.find(a), b_id = vocab.find(b);
    if (!a_id || !b_id)
      entry.fail(
          str("names a token that is not in model.vocab: \"", printable(!a_id ? a : b), "\""));
    const std::string merged =
        a +
        (prefix_length > 0 && b.compare(0, prefix_length, options.continuing_subword_prefix) == 0
             ? b.substr(prefix_length)
             : b);
    auto new_id = vocab.find(merged);
    if (!new_id) entry.fail(str("yields \"", printable(merged), "\", which is not in model.vocab"));
    ranks.insert_or_assign(Bpe::key(*a_id, *b_id),
                           Bpe::Merge{static_cast<int32_t>(rank), static_cast<int32_t>(*new_id)});
  }
  return std::make_unique<Bpe>(std::move(vocab), std::move(ranks), std::move(options));
}

}  // namespace stunt::io::tokenizer_detail
