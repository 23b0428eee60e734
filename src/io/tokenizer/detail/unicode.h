#pragma once
// UTF-8 and the few Unicode properties the tokenizers need (tables from
// scripts/gen_unicode_tables.py; the Unicode version is kUnicodeVersion in unicode_tables.inc).

#include <cstdint>
#include <string>
#include <string_view>

namespace stunt::io::tokenizer_detail {

/// U+FFFD, what an ill-formed UTF-8 byte decodes to.
constexpr uint32_t kReplacementChar = 0xFFFD;

/// Unicode general categories, Cn (unassigned) first.
enum class Category : uint8_t {
  Cn,
  Lu,
  Ll,
  Lt,
  Lm,
  Lo,
  Mn,
  Mc,
  Me,
  Nd,
  Nl,
  No,
  Pc,
  Pd,
  Ps,
  Pe,
  Pi,
  Pf,
  Po,
  Sm,
  Sc,
  Sk,
  So,
  Zs,
  Zl,
  Zp,
  Cc,
  Cf,
  Cs,
  Co
};

/// Decodes the code point at text[i] and advances i past it. An ill-formed sequence yields
/// U+FFFD and advances one byte.
uint32_t next_code_point(std::string_view text, size_t& i);
/// Byte length of the well-formed UTF-8 sequence at text[i], 0 when ill-formed.
size_t utf8_length_at(std::string_view text, size_t i);
/// Appends cp encoded as UTF-8.
void append_utf8(std::string& out, uint32_t cp);
/// text with every ill-formed byte replaced by U+FFFD (returns text unchanged when valid).
std::string sanitize_utf8(std::string_view text);

Category category(uint32_t cp);
/// Canonical combining class (0 for starters).
uint8_t combining_class(uint32_t cp);
inline bool is_letter(uint32_t cp) {
  const auto c = category(cp);
  return c >= Category::Lu && c <= Category::Lo;
}
inline bool is_number(uint32_t cp) {
  const auto c = category(cp);
  return c >= Category::Nd && c <= Category::No;
}
inline bool is_punctuation(uint32_t cp) {
  const auto c = category(cp);
  return c >= Category::Pc && c <= Category::Po;
}
/// C* categories, unassigned included (Rust unicode_categories' is_other).
inline bool is_other(uint32_t cp) {
  const auto c = category(cp);
  return c == Category::Cn || c >= Category::Cc;
}
/// The White_Space property (Rust char::is_whitespace, Oniguruma's \s).
bool is_whitespace(uint32_t cp);
/// Letters and numbers (Rust char::is_alphanumeric, approximately).
inline bool is_alphanumeric(uint32_t cp) { return is_letter(cp) || is_number(cp); }

/// Appends the full canonical decomposition of cp (cp itself when it has none), unordered.
void append_nfd(std::string& out, uint32_t cp);
/// Canonical decomposition (NFD) of a whole string, combining marks in canonical order.
std::string nfd(std::string_view text);
/// Appends the lower case of cp (may be several code points, as Rust's char::to_lowercase).
void append_lowercase(std::string& out, uint32_t cp);

}  // namespace stunt::io::tokenizer_detail
