// Normalizers of tokenizer.json: BertNormalizer, Lowercase, NFD, StripAccents, Strip, Replace,
// Nmt, Prepend, Precompiled and Sequence.
#include "detail/pipeline.h"
#include "detail/unicode.h"
#include "stunt/core/error.h"

namespace stunt::io::tokenizer_detail {
namespace {

// BERT's CJK ideograph blocks (tokenizers/src/normalizers/bert.rs, is_chinese_char).
bool is_chinese_char(uint32_t cp) {
  return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) ||
         (cp >= 0x20000 && cp <= 0x2A6DF) || (cp >= 0x2A700 && cp <= 0x2B73F) ||
         (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B920 && cp <= 0x2CEAF) ||
         (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

void strip_nonspacing_marks(std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    const size_t start = i;
    const uint32_t cp = next_code_point(text, i);
    if (category(cp) != Category::Mn) out.append(text, start, i - start);
  }
  text.swap(out);
}

void lowercase(std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) append_lowercase(out, next_code_point(text, i));
  text.swap(out);
}

class BertNormalizer : public Normalizer {
 public:
  BertNormalizer(bool clean_text, bool chinese_chars, bool strip_accents, bool lowercase)
      : clean_text_(clean_text),
        chinese_chars_(chinese_chars),
        strip_accents_(strip_accents),
        lowercase_(lowercase) {}
  void normalize(std::string& text) const override {
    if (clean_text_ || chinese_chars_) {
      std::string out;
      out.reserve(text.size() + 8);
      for (size_t i = 0; i < text.size();) {
        const size_t start = i;
        const uint32_t cp = next_code_point(text, i);
        if (clean_text_) {
          const bool control = cp != '\t' && cp != '\n' && cp != '\r' && is_other(cp);
          if (cp == 0 || cp == kReplacementChar || control) continue;
          if (is_whitespace(cp)) {
            out += ' ';
            continue;
          }
        }
        if (chinese_chars_ && is_chinese_char(cp)) {
          out += ' ';
          out.append(text, start, i - start);
          out += ' ';
        } else {
          out.append(text, start, i - start);
        }
      }
      text.swap(out);
    }
    if (strip_accents_) {
      text = nfd(text);
      strip_nonspacing_marks(text);
    }
    if (lowercase_) lowercase(text);
  }

 private:
  bool clean_text_, chinese_chars_, strip_accents_, lowercase_;
};

class FunctionNormalizer : public Normalizer {
 public:
  explicit FunctionNormalizer(void (*function)(std::string&)) : function_(function) {}
  void normalize(std::string& text) const override { function_(text); }

 private:
  void (*function_)(std::string&);
};

class StripNormalizer : public Normalizer {
 public:
  StripNormalizer(bool left, bool right) : left_(left), right_(right) {}
  void normalize(std::string& text) const override {
    size_t begin = 0, end = text.size();
    if (left_) {
      while (begin < end) {
        size_t i = begin;
        if (!is_whitespace(next_code_point(text, i))) break;
        begin = i;
      }
    }
    if (right_) {
      while (end > begin) {
        size_t start = end - 1;
        while (start > begin && (static_cast<unsigned char>(text[start]) & 0xc0) == 0x80) --start;
        size_t i = start;
        if (!is_whitespace(next_code_point(text, i))) break;
        end = start;
      }
    }
    text = text.substr(begin, end - begin);
  }

 private:
  bool left_, right_;
};

// Replace with a literal pattern, or with the regex " {2,}" (T5: runs of spaces).
class ReplaceNormalizer : public Normalizer {
 public:
  ReplaceNormalizer(std::string pattern, bool space_run, std::string content)
      : pattern_(std::move(pattern)), space_run_(space_run), content_(std::move(content)) {}
  void normalize(std::string& text) const override {
    std::string out;
    out.reserve(text.size());
    for (size_t i = 0; i < text.size();) {
      if (space_run_) {
        size_t j = i;
        while (j < text.size() && text[j] == ' ') ++j;
        if (j - i >= 2) {
          out += content_;
          i = j;
          continue;
        }
      } else if (!pattern_.empty() && text.compare(i, pattern_.size(), pattern_) == 0) {
        out += content_;
        i += pattern_.size();
        continue;
      }
      out += text[i++];
    }
    text.swap(out);
  }

 private:
  std::string pattern_;
  bool space_run_;
  std::string content_;
};

// tokenizers/src/normalizers/unicode.rs, do_nmt.
void nmt(std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    const size_t start = i;
    const uint32_t cp = next_code_point(text, i);
    if ((cp >= 0x1 && cp <= 0x8) || cp == 0xB || (cp >= 0xE && cp <= 0x1F) || cp == 0x7F ||
        cp == 0x8F || cp == 0x9F) {
      continue;
    }
    if (cp == 0x9 || cp == 0xA || cp == 0xC || cp == 0xD || cp == 0x1680 ||
        (cp >= 0x200B && cp <= 0x200F) || cp == 0x2028 || cp == 0x2029 || cp == 0x2581 ||
        cp == 0xFEFF || cp == 0xFFFD) {
      out += ' ';
    } else {
      out.append(text, start, i - start);
    }
  }
  text.swap(out);
}

class PrependNormalizer : public Normalizer {
 public:
  explicit PrependNormalizer(std::string prefix) : prefix_(std::move(prefix)) {}
  void normalize(std::string& text) const override {
    if (!text.empty()) text.insert(0, prefix_);
  }

 private:
  std::string prefix_;
};

class SequenceNormalizer : public Normalizer {
 public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> parts)
      : parts_(std::move(parts)) {}
  void normalize(std::string& text) const override {
    for (const auto& part : parts_) part->normalize(text);
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> parts_;
};

}  // namespace

std::unique_ptr<Normalizer> make_normalizer(const JsonNode& node) {
  const std::string type = node.at("type").as_string();
  if (type == "BertNormalizer") {
    const bool lower = node.get_bool("lowercase", true);
    // strip_accents null means: strip when lowercasing (as the original BERT).
    const bool strip = node.find("strip_accents") ? node.at("strip_accents").as_bool() : lower;
    return std::make_unique<BertNormalizer>(node.get_bool("clean_text", true),
                                            node.get_bool("handle_chinese_chars", true), strip,
                                            lower);
  }
  if (type == "Lowercase") return std::make_unique<FunctionNormalizer>(&lowercase);
  if (type == "StripAccents") return std::make_unique<FunctionNormalizer>(&strip_nonspacing_marks);
  if (type == "NFD") {
    return std::make_unique<FunctionNormalizer>([](std::string& text) { text = nfd(text); });
  }
  if (type == "Nmt") return std::make_unique<FunctionNormalizer>(&nmt);
  if (type == "Strip") {
    return std::make_unique<StripNormalizer>(node.get_bool("strip_left", true),
                                             node.get_bool("strip_right", true));
  }
  if (type == "Prepend") return std::make_unique<PrependNormalizer>(node.at("prepend").as_string());
  if (type == "Replace") {
    const JsonNode pattern = node.at("pattern");
    const std::string content = node.at("content").as_string();
    if (auto literal = pattern.find("String")) {
      const std::string text = literal->as_string();
      if (text.empty()) literal->fail("must not be empty");
      return std::make_unique<ReplaceNormalizer>(text, false, content);
    }
    const std::string regex = pattern.at("Regex").as_string();
    if (regex != " {2,}") {
      pattern.at("Regex").fail(str("\"", regex, "\" is not supported; supported regex: \" {2,}\""));
    }
    return std::make_unique<ReplaceNormalizer>("", true, content);
  }
  if (type == "Precompiled") {
    return make_precompiled_normalizer(base64_decode(node.at("precompiled_charsmap")), node.file());
  }
  if (type == "Sequence") {
    const JsonNode list = node.at("normalizers");
    std::vector<std::unique_ptr<Normalizer>> parts;
    for (size_t i = 0; i < list.size(); ++i) parts.push_back(make_normalizer(list.at(i)));
    return std::make_unique<SequenceNormalizer>(std::move(parts));
  }
  node.at("type").fail(
      str("\"", type,
          "\" is not supported; supported: BertNormalizer, Lowercase, "
          "NFD, StripAccents, Strip, Replace, Nmt, Prepend, Precompiled, Sequence"));
}

}  // namespace stunt::io::tokenizer_detail
