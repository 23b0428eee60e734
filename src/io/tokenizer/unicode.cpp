#include "detail/unicode.h"

#include "stunt/core/error.h"

#include <algorithm>
#include <vector>

namespace stunt::io::tokenizer_detail {
namespace {

struct CategoryRange {
  uint32_t first;
  uint32_t last;
  uint8_t value;
};
struct MappingEntry {
  uint32_t cp;
  uint16_t offset;
  uint8_t length;
};

#include "unicode_tables.inc"

// Hangul syllables decompose arithmetically (Unicode 3.12, "Conjoining Jamo Behavior").
constexpr uint32_t kHangulBase = 0xAC00, kHangulLast = 0xD7A3, kLeadBase = 0x1100,
                   kVowelBase = 0x1161, kTrailBase = 0x11A7, kVowelCount = 21, kTrailCount = 28;

template <size_t N>
uint8_t range_lookup(const CategoryRange (&table)[N], uint32_t cp) {
  const auto* it = std::upper_bound(std::begin(table), std::end(table), cp,
                                    [](uint32_t v, const CategoryRange& r) { return v < r.first; });
  if (it == std::begin(table)) return 0;
  --it;
  return cp <= it->last ? it->value : 0;
}

template <size_t N, size_t M>
bool append_mapping(std::string& out, const MappingEntry (&entries)[N], const uint32_t (&data)[M],
                    uint32_t cp) {
  const auto* it = std::lower_bound(std::begin(entries), std::end(entries), cp,
                                    [](const MappingEntry& e, uint32_t v) { return e.cp < v; });
  if (it == std::end(entries) || it->cp != cp) return false;
  for (size_t k = 0; k < it->length; ++k) append_utf8(out, data[it->offset + k]);
  return true;
}

}  // namespace

size_t utf8_length_at(std::string_view text, size_t i) { return utf8_sequence_length(text, i); }

uint32_t next_code_point(std::string_view text, size_t& i) {
  const auto c = static_cast<unsigned char>(text[i]);
  if (c < 0x80) {
    ++i;
    return c;
  }
  const size_t length = utf8_length_at(text, i);
  if (length == 0) {
    ++i;
    return kReplacementChar;
  }
  uint32_t cp = c & (length == 2 ? 0x1f : length == 3 ? 0x0f : 0x07);
  for (size_t k = 1; k < length; ++k)
    cp = (cp << 6) | (static_cast<unsigned char>(text[i + k]) & 0x3f);
  i += length;
  return cp;
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xc0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xe0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else {
    out += static_cast<char>(0xf0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  }
}

std::string sanitize_utf8(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    const size_t length = utf8_length_at(text, i);
    if (length == 0) {
      append_utf8(out, kReplacementChar);
      ++i;
    } else {
      out.append(text.substr(i, length));
      i += length;
    }
  }
  return out;
}

Category category(uint32_t cp) {
  if (cp < 0x80) {
    // ASCII fast path, same answers as the table.
    if (cp >= 'a' && cp <= 'z') return Category::Ll;
    if (cp >= 'A' && cp <= 'Z') return Category::Lu;
    if (cp >= '0' && cp <= '9') return Category::Nd;
    if (cp == ' ') return Category::Zs;
  }
  return static_cast<Category>(range_lookup(kCategoryRanges, cp));
}

uint8_t combining_class(uint32_t cp) {
  return cp < 0x300 ? 0 : range_lookup(kCombiningClassRanges, cp);
}

bool is_whitespace(uint32_t cp) {
  if (cp < 0x80) return cp == ' ' || (cp >= 0x09 && cp <= 0x0d);
  switch (cp) {
    case 0x85:
    case 0xA0:
    case 0x1680:
    case 0x2028:
    case 0x2029:
    case 0x202F:
    case 0x205F:
    case 0x3000:
      return true;
    default:
      return cp >= 0x2000 && cp <= 0x200A;
  }
}

void append_nfd(std::string& out, uint32_t cp) {
  if (cp < 0xC0) {
    append_utf8(out, cp);
  } else if (cp >= kHangulBase && cp <= kHangulLast) {
    const uint32_t index = cp - kHangulBase;
    append_utf8(out, kLeadBase + index / (kVowelCount * kTrailCount));
    append_utf8(out, kVowelBase + (index % (kVowelCount * kTrailCount)) / kTrailCount);
    if (index % kTrailCount != 0) append_utf8(out, kTrailBase + index % kTrailCount);
  } else if (!append_mapping(out, kNfdEntries, kNfdData, cp)) {
    append_utf8(out, cp);
  }
}

std::string nfd(std::string_view text) {
  std::string decomposed;
  decomposed.reserve(text.size());
  for (size_t i = 0; i < text.size();) append_nfd(decomposed, next_code_point(text, i));
  // Canonical ordering: stable sort each run of non-starters by combining class.
  std::vector<uint32_t> cps;
  for (size_t i = 0; i < decomposed.size();) cps.push_back(next_code_point(decomposed, i));
  bool reordered = false;
  for (size_t i = 0; i < cps.size();) {
    if (combining_class(cps[i]) == 0) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < cps.size() && combining_class(cps[j]) != 0) ++j;
    if (j - i > 1) {
      std::stable_sort(cps.begin() + i, cps.begin() + j, [](uint32_t a, uint32_t b) {
        return combining_class(a) < combining_class(b);
      });
      reordered = true;
    }
    i = j;
  }
  if (!reordered) return decomposed;
  std::string out;
  out.reserve(decomposed.size());
  for (uint32_t cp : cps) append_utf8(out, cp);
  return out;
}

void append_lowercase(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp >= 'A' && cp <= 'Z' ? cp + ('a' - 'A') : cp);
  } else if (!append_mapping(out, kLowercaseEntries, kLowercaseData, cp)) {
    append_utf8(out, cp);
  }
}

}  // namespace stunt::io::tokenizer_detail
