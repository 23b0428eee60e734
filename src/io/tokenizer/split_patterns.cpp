#include "detail/split_patterns.h"

#include "detail/unicode.h"

namespace stunt::io::tokenizer_detail {

const char* const kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

namespace {

constexpr const char* kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr const char* kQwen2Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

enum class Class { Letter, Number, Space, Other };

struct Cursor {
  std::string_view text;
  // Code point and class at byte offset i; end reports the next offset.
  Class class_at(size_t i, size_t* end = nullptr, uint32_t* cp_out = nullptr) const {
    size_t j = i;
    const uint32_t cp = next_code_point(text, j);
    if (end) *end = j;
    if (cp_out) *cp_out = cp;
    if (is_whitespace(cp)) return Class::Space;
    if (is_letter(cp)) return Class::Letter;
    if (is_number(cp)) return Class::Number;
    return Class::Other;
  }
  // End of the run of characters of class c starting at i, at most max_count characters.
  size_t run_end(size_t i, Class c, size_t max_count = SIZE_MAX) const {
    size_t count = 0;
    while (i < text.size() && count < max_count) {
      size_t next;
      if (class_at(i, &next) != c) break;
      i = next;
      ++count;
    }
    return i;
  }
};

// 's 't 're 've 'm 'll 'd at pos (text[pos] == '\''); 0 when none. case_insensitive follows
// Oniguruma's case folding (s also matches U+017F LATIN SMALL LETTER LONG S).
size_t match_contraction(std::string_view text, size_t pos, bool case_insensitive) {
  auto at = [&](size_t k) -> char {
    if (pos + k >= text.size()) return '\0';
    const char c = text[pos + k];
    return case_insensitive && c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
  };
  const char c1 = at(1);
  if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') return 2;
  if (case_insensitive && text.compare(pos + 1, 2, "\xc5\xbf") == 0) return 3;
  const char c2 = at(2);
  if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) return 3;
  return 0;
}

// \s+(?!\S)|\s+ at pos (a whitespace character).
size_t match_trailing_space(const Cursor& cur, size_t pos) {
  size_t last_start = pos, i = pos;
  size_t count = 0;
  while (i < cur.text.size()) {
    size_t next;
    if (cur.class_at(i, &next) != Class::Space) break;
    last_start = i;
    i = next;
    ++count;
  }
  if (i == cur.text.size() || count == 1) return i - pos;
  return last_start - pos;  // leave the last space to start the next word
}

size_t match_gpt2(const Cursor& cur, size_t pos) {
  const std::string_view text = cur.text;
  if (text[pos] == '\'') {
    if (size_t n = match_contraction(text, pos, false)) return n;
  }
  const size_t q = text[pos] == ' ' && pos + 1 < text.size() ? pos + 1 : pos;
  // ' ?\p{L}+', ' ?\p{N}+', ' ?[^\s\p{L}\p{N}]+'
  const Class c = cur.class_at(q);
  if (c != Class::Space) return cur.run_end(q, c) - pos;
  return match_trailing_space(cur, pos);
}

size_t match_llama3(const Cursor& cur, size_t pos, size_t max_digits) {
  const std::string_view text = cur.text;
  if (text[pos] == '\'') {
    if (size_t n = match_contraction(text, pos, true)) return n;
  }
  size_t next;
  uint32_t cp;
  const Class c = cur.class_at(pos, &next, &cp);
  // [^\r\n\p{L}\p{N}]?\p{L}+
  if (c == Class::Letter) return cur.run_end(pos, Class::Letter) - pos;
  if (c != Class::Number && cp != '\r' && cp != '\n' && next < text.size() &&
      cur.class_at(next) == Class::Letter) {
    return cur.run_end(next, Class::Letter) - pos;
  }
  // \p{N}{1,3}
  if (c == Class::Number) return cur.run_end(pos, Class::Number, max_digits) - pos;
  // ' ?[^\s\p{L}\p{N}]+[\r\n]*'
  const size_t q = cp == ' ' && next < text.size() ? next : pos;
  if (cur.class_at(q) == Class::Other) {
    size_t end = cur.run_end(q, Class::Other);
    while (end < text.size() && (text[end] == '\r' || text[end] == '\n')) ++end;
    return end - pos;
  }
  // \s*[\r\n]+ : up to the last line break of the whitespace run.
  size_t i = pos, after_break = 0;
  while (i < text.size()) {
    size_t n;
    uint32_t space;
    if (cur.class_at(i, &n, &space) != Class::Space) break;
    if (space == '\r' || space == '\n') after_break = n;
    i = n;
  }
  if (after_break != 0) return after_break - pos;
  return match_trailing_space(cur, pos);
}

}  // namespace

std::optional<SplitPattern> recognize_split_pattern(std::string_view regex) {
  if (regex == kGpt2Pattern) return SplitPattern::Gpt2;
  if (regex == kLlama3Pattern) return SplitPattern::Llama3;
  if (regex == kQwen2Pattern) return SplitPattern::Qwen2;
  return std::nullopt;
}

std::string supported_split_patterns() {
  return std::string("GPT-2 ") + kGpt2Pattern + ", Llama 3 " + kLlama3Pattern + ", Qwen2 " +
         kQwen2Pattern;
}

size_t match_split_pattern(SplitPattern pattern, std::string_view text, size_t pos) {
  const Cursor cur{text};
  switch (pattern) {
    case SplitPattern::Gpt2:
      return match_gpt2(cur, pos);
    case SplitPattern::Llama3:
      return match_llama3(cur, pos, 3);
    case SplitPattern::Qwen2:
      return match_llama3(cur, pos, 1);
  }
  return 1;
}

}  // namespace stunt::io::tokenizer_detail
