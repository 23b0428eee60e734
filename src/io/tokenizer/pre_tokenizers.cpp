// Pre-tokenizers of tokenizer.json: BertPreTokenizer, ByteLevel, Split, Metaspace,
// WhitespaceSplit, Whitespace, Digits and Sequence.
#include <algorithm>

#include "detail/byte_level.h"
#include "detail/pipeline.h"
#include "detail/split_patterns.h"
#include "detail/unicode.h"
#include "stunt/core/error.h"

namespace stunt::io::tokenizer_detail {
namespace {

enum class Behavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

struct Span {
  size_t begin, end;
  bool is_match;
};

// Appends the pieces of `piece` given its spans (in order, covering it), as HF's
// NormalizedString::split does for each SplitDelimiterBehavior.
void emit(const Piece& piece, std::vector<Span>& spans, Behavior behavior,
          std::vector<Piece>& out) {
  std::vector<Span> merged;
  merged.reserve(spans.size());
  switch (behavior) {
    case Behavior::Removed:
      for (const Span& s : spans)
        if (!s.is_match) merged.push_back(s);
      break;
    case Behavior::Isolated:
      merged = spans;
      break;
    case Behavior::MergedWithPrevious: {
      bool previous_match = false;
      for (const Span& s : spans) {
        if (s.is_match && !previous_match && !merged.empty()) {
          merged.back().end = s.end;
        } else {
          merged.push_back(s);
        }
        previous_match = s.is_match;
      }
      break;
    }
    case Behavior::MergedWithNext: {
      bool previous_match = false;
      for (auto it = spans.rbegin(); it != spans.rend(); ++it) {
        if (it->is_match && !previous_match && !merged.empty()) {
          merged.back().begin = it->begin;
        } else {
          merged.push_back(*it);
        }
        previous_match = it->is_match;
      }
      std::reverse(merged.begin(), merged.end());
      break;
    }
    case Behavior::Contiguous: {
      bool previous_match = false;
      for (const Span& s : spans) {
        if (s.is_match == previous_match && !merged.empty()) {
          merged.back().end = s.end;
        } else {
          merged.push_back(s);
        }
        previous_match = s.is_match;
      }
      break;
    }
  }
  for (const Span& s : merged) {
    if (s.end > s.begin) {
      out.push_back(
          Piece{piece.text.substr(s.begin, s.end - s.begin), piece.at_start && s.begin == 0});
    }
  }
}

// Splits every piece where predicate(code point) holds, one match per code point.
template <typename Predicate>
void split_chars(std::vector<Piece>& pieces, Behavior behavior, Predicate predicate) {
  std::vector<Piece> out;
  out.reserve(pieces.size() * 2);
  std::vector<Span> spans;
  for (const Piece& piece : pieces) {
    spans.clear();
    size_t gap = 0;
    for (size_t i = 0; i < piece.text.size();) {
      const size_t start = i;
      if (predicate(next_code_point(piece.text, i))) {
        if (start > gap) spans.push_back({gap, start, false});
        spans.push_back({start, i, true});
        gap = i;
      }
    }
    if (piece.text.size() > gap) spans.push_back({gap, piece.text.size(), false});
    emit(piece, spans, behavior, out);
  }
  pieces.swap(out);
}

void split_pattern(std::vector<Piece>& pieces, SplitPattern pattern, Behavior behavior,
                   bool invert) {
  std::vector<Piece> out;
  out.reserve(pieces.size() * 4);
  std::vector<Span> spans;
  for (const Piece& piece : pieces) {
    spans.clear();
    for (size_t i = 0; i < piece.text.size();) {
      const size_t length = match_split_pattern(pattern, piece.text, i);
      spans.push_back({i, i + length, !invert});
      i += length;
    }
    emit(piece, spans, behavior, out);
  }
  pieces.swap(out);
}

void split_string(std::vector<Piece>& pieces, const std::string& delimiter, Behavior behavior,
                  bool invert) {
  std::vector<Piece> out;
  std::vector<Span> spans;
  for (const Piece& piece : pieces) {
    spans.clear();
    size_t gap = 0;
    for (size_t at = piece.text.find(delimiter); at != std::string::npos;
         at = piece.text.find(delimiter, at + delimiter.size())) {
      if (at > gap) spans.push_back({gap, at, invert});
      spans.push_back({at, at + delimiter.size(), !invert});
      gap = at + delimiter.size();
    }
    if (piece.text.size() > gap) spans.push_back({gap, piece.text.size(), invert});
    emit(piece, spans, behavior, out);
  }
  pieces.swap(out);
}

bool is_bert_punctuation(uint32_t cp) {
  if (cp < 0x80)
    return (cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) ||
           (cp >= 123 && cp <= 126);
  return is_punctuation(cp);
}

class BertPreTokenizer : public PreTokenizer {
 public:
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    split_chars(pieces, Behavior::Removed, [](uint32_t cp) { return is_whitespace(cp); });
    split_chars(pieces, Behavior::Isolated, &is_bert_punctuation);
  }
};

class WhitespaceSplit : public PreTokenizer {
 public:
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    split_chars(pieces, Behavior::Removed, [](uint32_t cp) { return is_whitespace(cp); });
  }
};

// \w+|[^\w\s]+ where \w is letters, marks, decimal digits and connector punctuation.
class WhitespacePreTokenizer : public PreTokenizer {
 public:
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    std::vector<Piece> out;
    for (const Piece& piece : pieces) {
      const std::string& t = piece.text;
      int current = -1;  // 0 word, 1 other, -1 none
      size_t begin = 0;
      for (size_t i = 0; i < t.size();) {
        const size_t start = i;
        const uint32_t cp = next_code_point(t, i);
        const Category c = category(cp);
        const int kind = is_whitespace(cp) ? -1
                         : (is_letter(cp) || c == Category::Mn || c == Category::Mc ||
                            c == Category::Me || c == Category::Nd || c == Category::Pc)
                             ? 0
                             : 1;
        if (kind != current) {
          if (current >= 0)
            out.push_back({t.substr(begin, start - begin), piece.at_start && begin == 0});
          begin = start;
          current = kind;
        }
      }
      if (current >= 0) out.push_back({t.substr(begin), piece.at_start && begin == 0});
    }
    pieces.swap(out);
  }
};

class DigitsPreTokenizer : public PreTokenizer {
 public:
  explicit DigitsPreTokenizer(bool individual) : individual_(individual) {}
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    split_chars(pieces, individual_ ? Behavior::Isolated : Behavior::Contiguous,
                [](uint32_t cp) { return is_number(cp); });
  }

 private:
  bool individual_;
};

class ByteLevelPreTokenizer : public PreTokenizer {
 public:
  ByteLevelPreTokenizer(bool add_prefix_space, bool use_regex)
      : add_prefix_space_(add_prefix_space), use_regex_(use_regex) {}
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    if (add_prefix_space_) {
      for (Piece& piece : pieces)
        if (piece.text.empty() || piece.text[0] != ' ') piece.text.insert(0, 1, ' ');
    }
    if (use_regex_) split_pattern(pieces, SplitPattern::Gpt2, Behavior::Isolated, false);
    std::string mapped;
    for (Piece& piece : pieces) {
      mapped.clear();
      for (char c : piece.text) mapped += byte_to_unicode(static_cast<unsigned char>(c));
      piece.text.swap(mapped);
    }
  }

 private:
  bool add_prefix_space_, use_regex_;
};

class SplitPreTokenizer : public PreTokenizer {
 public:
  SplitPreTokenizer(std::optional<SplitPattern> pattern, std::string delimiter, Behavior behavior,
                    bool invert)
      : pattern_(pattern), delimiter_(std::move(delimiter)), behavior_(behavior), invert_(invert) {}
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    if (pattern_) {
      split_pattern(pieces, *pattern_, behavior_, invert_);
    } else {
      split_string(pieces, delimiter_, behavior_, invert_);
    }
  }

 private:
  std::optional<SplitPattern> pattern_;
  std::string delimiter_;
  Behavior behavior_;
  bool invert_;
};

enum class PrependScheme { Always, First, Never };

class MetaspacePreTokenizer : public PreTokenizer {
 public:
  MetaspacePreTokenizer(std::string replacement, PrependScheme scheme, bool split)
      : replacement_(std::move(replacement)), scheme_(scheme), split_(split) {}
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    std::string replaced;
    for (Piece& piece : pieces) {
      replaced.clear();
      for (char c : piece.text) {
        if (c == ' ') {
          replaced += replacement_;
        } else {
          replaced += c;
        }
      }
      const bool starts = replaced.compare(0, replacement_.size(), replacement_) == 0;
      if (!starts && (scheme_ == PrependScheme::Always ||
                      (scheme_ == PrependScheme::First && piece.at_start))) {
        replaced.insert(0, replacement_);
      }
      piece.text.swap(replaced);
    }
    if (split_) split_string(pieces, replacement_, Behavior::MergedWithNext, false);
  }

 private:
  std::string replacement_;
  PrependScheme scheme_;
  bool split_;
};

class SequencePreTokenizer : public PreTokenizer {
 public:
  explicit SequencePreTokenizer(std::vector<std::unique_ptr<PreTokenizer>> parts)
      : parts_(std::move(parts)) {}
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    for (const auto& part : parts_) part->pre_tokenize(pieces);
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> parts_;
};

Behavior parse_behavior(const JsonNode& node) {
  const std::string name = node.as_string();
  if (name == "Removed") return Behavior::Removed;
  if (name == "Isolated") return Behavior::Isolated;
  if (name == "MergedWithPrevious") return Behavior::MergedWithPrevious;
  if (name == "MergedWithNext") return Behavior::MergedWithNext;
  if (name == "Contiguous") return Behavior::Contiguous;
  node.fail(str("\"", name,
                "\" is not a split behavior; expected Removed, Isolated, "
                "MergedWithPrevious, MergedWithNext or Contiguous"));
}

}  // namespace

std::unique_ptr<PreTokenizer> make_pre_tokenizer(const JsonNode& node) {
  const std::string type = node.at("type").as_string();
  if (type == "BertPreTokenizer") return std::make_unique<BertPreTokenizer>();
  if (type == "WhitespaceSplit") return std::make_unique<WhitespaceSplit>();
  if (type == "Whitespace") return std::make_unique<WhitespacePreTokenizer>();
  if (type == "Digits")
    return std::make_unique<DigitsPreTokenizer>(node.get_bool("individual_digits", false));
  if (type == "ByteLevel") {
    return std::make_unique<ByteLevelPreTokenizer>(node.get_bool("add_prefix_space", true),
                                                   node.get_bool("use_regex", true));
  }
  if (type == "Split") {
    const JsonNode pattern = node.at("pattern");
    const Behavior behavior = parse_behavior(node.at("behavior"));
    const bool invert = node.get_bool("invert", false);
    if (auto literal = pattern.find("String")) {
      const std::string delimiter = literal->as_string();
      if (delimiter.empty()) literal->fail("must not be empty");
      return std::make_unique<SplitPreTokenizer>(std::nullopt, delimiter, behavior, invert);
    }
    const JsonNode regex = pattern.at("Regex");
    const std::string text = regex.as_string();
    auto known = recognize_split_pattern(text);
    if (!known) {
      regex.fail(str("\"", text,
                     "\" is not a supported pre-tokenizer regex (Stunt matches known "
                     "patterns exactly, without a regex engine); supported: ",
                     supported_split_patterns()));
    }
    return std::make_unique<SplitPreTokenizer>(known, "", behavior, invert);
  }
  if (type == "Metaspace") {
    const std::string replacement = node.get_string("replacement", "\xe2\x96\x81");
    PrependScheme scheme = PrependScheme::Always;
    if (auto prepend = node.find("prepend_scheme")) {
      const std::string name = prepend->as_string();
      if (name == "always") {
        scheme = PrependScheme::Always;
      } else if (name == "first") {
        scheme = PrependScheme::First;
      } else if (name == "never") {
        scheme = PrependScheme::Never;
      } else {
        prepend->fail(
            str("\"", name, "\" is not a prepend scheme; expected always, first or never"));
      }
    } else if (!node.get_bool("add_prefix_space", true)) {
      scheme = PrependScheme::Never;
    }
    return std::make_unique<MetaspacePreTokenizer>(replacement, scheme,
                                                   node.get_bool("split", true));
  }
  if (type == "Sequence") {
    const JsonNode list = node.at("pretokenizers");
    std::vector<std::unique_ptr<PreTokenizer>> parts;
    for (size_t i = 0; i < list.size(); ++i) parts.push_back(make_pre_tokenizer(list.at(i)));
    return std::make_unique<SequencePreTokenizer>(std::move(parts));
  }
  node.at("type").fail(str("\"", type,
                           "\" is not supported; supported: BertPreTokenizer, "
                           "ByteLevel, Split, Metaspace, WhitespaceSplit, Whitespace, Digits, "
                           "Sequence"));
}

}  // namespace stunt::io::tokenizer_detail
