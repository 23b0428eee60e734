// SentencePiece's precompiled charsmap: [u32 trie size][Darts double-array trie][replacement
// strings, each NUL-terminated]. The trie maps an input prefix to the offset of its
// replacement. Used by SentencePiece's normalizer and by HF's Precompiled normalizer.
#include <cstring>

#include "detail/pipeline.h"
#include "detail/unicode.h"
#include "stunt/core/error.h"

namespace stunt::io::tokenizer_detail {
namespace {

class CharsMap {
 public:
  CharsMap(const std::string& blob, const std::string& source) {
    if (blob.empty()) return;
    STUNT_CHECK_AS(FormatError, blob.size() >= 4, source, ": precompiled_charsmap is truncated (",
                   blob.size(), " bytes)");
    uint32_t trie_size = 0;
    for (int k = 3; k >= 0; --k) trie_size = (trie_size << 8) | static_cast<unsigned char>(blob[k]);
    STUNT_CHECK_AS(FormatError, trie_size % 4 == 0 && trie_size <= blob.size() - 4, source,
                   ": precompiled_charsmap has a trie of ", trie_size, " bytes in a blob of ",
                   blob.size(), " bytes");
    units_.resize(trie_size / 4);
    for (size_t i = 0; i < units_.size(); ++i) {
      uint32_t unit = 0;
      for (int k = 3; k >= 0; --k)
        unit = (unit << 8) | static_cast<unsigned char>(blob[4 + i * 4 + k]);
      units_[i] = unit;
    }
    normalized_ = blob.substr(4 + trie_size);
  }
  bool empty() const { return units_.empty(); }

  // Darts-clone DoubleArray::commonPrefixSearch; calls found(value, length) per match.
  template <typename F>
  void prefixes(std::string_view key, F found) const {
    if (units_.empty()) return;
    size_t node = offset(units_[0]);
    for (size_t i = 0; i < key.size(); ++i) {
      const auto c = static_cast<unsigned char>(key[i]);
      node ^= c;
      if (node >= units_.size()) return;
      const uint32_t unit = units_[node];
      if ((unit & ((1U << 31) | 0xFF)) != c) return;
      node ^= offset(unit);
      if (node >= units_.size()) return;
      if ((unit >> 8) & 1) found(units_[node] & ((1U << 31) - 1), i + 1);
    }
  }
  // The NUL-terminated replacement at value; empty when out of range.
  std::string_view replacement(uint32_t value) const {
    if (value >= normalized_.size()) return {};
    const char* start = normalized_.data() + value;
    return std::string_view(start, strnlen(start, normalized_.size() - value));
  }

 private:
  static size_t offset(uint32_t unit) { return (unit >> 10) << ((unit & (1U << 9)) >> 6); }
  std::vector<uint32_t> units_;
  std::string normalized_;
};

// SentencePiece normalizer.cc Normalizer::Normalize (without user-defined symbols).
class SentencePieceNormalizer : public Normalizer {
 public:
  SentencePieceNormalizer(const SentencePieceNormalizerOptions& options, const std::string& source)
      : map_(options.precompiled_charsmap, source), options_(options) {}

  void normalize(std::string& text) const override {
    static const std::string kSpaceSymbol = "\xe2\x96\x81";  // U+2581, SentencePiece's space
    std::string_view input = text;
    if (options_.remove_extra_whitespaces) {
      while (!input.empty()) {
        auto [piece, consumed] = normalize_prefix(input);
        if (piece != " ") break;
        input.remove_prefix(consumed);
      }
    }
    std::string out;
    if (input.empty()) {
      text.clear();
      return;
    }
    out.reserve(input.size() * 3 / 2);
    bool is_prev_space = options_.remove_extra_whitespaces;
    if (options_.add_dummy_prefix) out += options_.escape_whitespaces ? kSpaceSymbol : " ";
    while (!input.empty()) {
      auto [piece, consumed] = normalize_prefix(input);
      while (is_prev_space && !piece.empty() && piece[0] == ' ') piece.remove_prefix(1);
      if (!piece.empty()) {
        for (char c : piece) {
          if (options_.escape_whitespaces && c == ' ') {
            out += kSpaceSymbol;
          } else {
            out += c;
          }
        }
        is_prev_space = piece.back() == ' ';
      }
      input.remove_prefix(consumed);
      if (!options_.remove_extra_whitespaces) is_prev_space = false;
    }
    if (options_.remove_extra_whitespaces) {
      const std::string space = options_.escape_whitespaces ? kSpaceSymbol : " ";
      while (out.size() >= space.size() &&
             out.compare(out.size() - space.size(), space.size(), space) == 0) {
        out.resize(out.size() - space.size());
      }
    }
    text.swap(out);
  }

 private:
  // Longest match in the charsmap, else one character (U+FFFD for one ill-formed byte).
  std::pair<std::string_view, size_t> normalize_prefix(std::string_view input) const {
    size_t longest = 0;
    uint32_t value = 0;
    map_.prefixes(input, [&](uint32_t v, size_t length) {
      if (length > longest) longest = length, value = v;
    });
    if (longest > 0) return {map_.replacement(value), longest};
    const size_t length = utf8_length_at(input, 0);
    if (length == 0) return {"\xef\xbf\xbd", 1};
    return {input.substr(0, length), length};
  }

  CharsMap map_;
  SentencePieceNormalizerOptions options_;
};

// HF tokenizers' Precompiled normalizer (spm_precompiled): per extended grapheme cluster
// shorter than 6 bytes, the first (shortest) trie match of the cluster replaces all of it;
// otherwise each character is looked up alone.
class PrecompiledNormalizer : public Normalizer {
 public:
  PrecompiledNormalizer(const std::string& blob, const std::string& source) : map_(blob, source) {}

  void normalize(std::string& text) const override {
    if (map_.empty()) return;
    std::string out;
    out.reserve(text.size());
    for (size_t i = 0; i < text.size();) {
      const size_t end = grapheme_end(text, i);
      const std::string_view grapheme(text.data() + i, end - i);
      if (grapheme.size() < 6 && transform(grapheme, out)) {
        i = end;
        continue;
      }
      while (i < end) {
        const size_t start = i;
        next_code_point(text, i);
        const std::string_view part(text.data() + start, i - start);
        if (!transform(part, out)) out.append(part);
      }
    }
    text.swap(out);
  }

 private:
  bool transform(std::string_view chunk, std::string& out) const {
    bool found = false;
    map_.prefixes(chunk, [&](uint32_t value, size_t) {
      if (found) return;
      found = true;
      out.append(map_.replacement(value));
    });
    return found;
  }
  // An approximation of UAX #29 extended grapheme clusters: a character with the combining
  // marks that follow it, zero-width-joiner sequences, and CR LF.
  static size_t grapheme_end(std::string_view text, size_t i) {
    const uint32_t first = next_code_point(text, i);
    if (first == '\r' && i < text.size() && text[i] == '\n') return i + 1;
    if (first == '\r' || first == '\n') return i;
    bool joined = false;
    while (i < text.size()) {
      size_t j = i;
      const uint32_t cp = next_code_point(text, j);
      const Category c = category(cp);
      if (c == Category::Mn || c == Category::Me || c == Category::Mc || cp == 0x200D || joined) {
        joined = cp == 0x200D;
        i = j;
      } else {
        break;
      }
    }
    return i;
  }

  CharsMap map_;
};

}  // namespace

std::unique_ptr<Normalizer> make_sentencepiece_normalizer(
    const SentencePieceNormalizerOptions& options, const std::string& source) {
  return std::make_unique<SentencePieceNormalizer>(options, source);
}

std::unique_ptr<Normalizer> make_precompiled_normalizer(const std::string& charsmap,
                                                        const std::string& source) {
  return std::make_unique<PrecompiledNormalizer>(charsmap, source);
}

}  // namespace stunt::io::tokenizer_detail
