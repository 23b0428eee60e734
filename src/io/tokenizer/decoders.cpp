// Decoders of tokenizer.json: ByteLevel, WordPiece, Metaspace, ByteFallback, Fuse, Strip,
// Replace, BPEDecoder and Sequence (HF decode_chain semantics: tokens in, text pieces out).
#include "detail/byte_level.h"
#include "detail/pipeline.h"
#include "detail/unicode.h"
#include "stunt/core/error.h"

namespace stunt::io::tokenizer_detail {
namespace {

void replace_all(std::string& text, std::string_view from, std::string_view to) {
  if (from.empty()) return;
  std::string out;
  size_t i = 0;
  for (size_t at = text.find(from); at != std::string::npos; at = text.find(from, i)) {
    out.append(text, i, at - i);
    out.append(to);
    i = at + from.size();
  }
  out.append(text, i, std::string::npos);
  text.swap(out);
}

class ByteLevelDecoder : public Decoder {
 public:
  void decode(std::vector<std::string>& tokens) const override {
    std::string bytes;
    for (const std::string& token : tokens) {
      const size_t before = bytes.size();
      bool all_mapped = true;
      for (size_t i = 0; i < token.size();) {
        auto b = unicode_to_byte(next_code_point(token, i));
        if (!b) {
          all_mapped = false;
          break;
        }
        bytes += static_cast<char>(*b);
      }
      if (!all_mapped) {
        bytes.resize(before);
        bytes += token;
      }
    }
    tokens.assign(1, sanitize_utf8(bytes));
  }
};

class WordPieceDecoder : public Decoder {
 public:
  WordPieceDecoder(std::string prefix, bool cleanup)
      : prefix_(std::move(prefix)), cleanup_(cleanup) {}
  void decode(std::vector<std::string>& tokens) const override {
    for (size_t i = 0; i < tokens.size(); ++i) {
      std::string& token = tokens[i];
      if (i != 0) {
        if (token.compare(0, prefix_.size(), prefix_) == 0) {
          token.erase(0, prefix_.size());
        } else {
          token.insert(0, 1, ' ');
        }
      }
      if (cleanup_) {
        for (const auto& [from, to] : kCleanup) replace_all(token, from, to);
      }
    }
  }

 private:
  // tokenizers/src/decoders/wordpiece.rs, cleanup().
  static constexpr std::pair<const char*, const char*> kCleanup[] = {
      {" .", "."},   {" ?", "?"},     {" !", "!"},    {" ,", ","},
      {" ' ", "'"},  {" n't", "n't"}, {" 'm", "'m"},  {" do not", " don't"},
      {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
  std::string prefix_;
  bool cleanup_;
};

class MetaspaceDecoder : public Decoder {
 public:
  MetaspaceDecoder(std::string replacement, bool strip_first)
      : replacement_(std::move(replacement)), strip_first_(strip_first) {}
  void decode(std::vector<std::string>& tokens) const override {
    for (size_t i = 0; i < tokens.size(); ++i) {
      replace_all(tokens[i], replacement_, " ");
      if (i == 0 && strip_first_ && !tokens[i].empty() && tokens[i][0] == ' ')
        tokens[i].erase(0, 1);
    }
  }

 private:
  std::string replacement_;
  bool strip_first_;
};

class ByteFallbackDecoder : public Decoder {
 public:
  void decode(std::vector<std::string>& tokens) const override {
    std::vector<std::string> out;
    std::string bytes;
    size_t byte_count = 0;
    auto flush = [&] {
      if (byte_count == 0) return;
      if (is_valid_utf8(bytes)) {
        out.push_back(bytes);
      } else {
        for (size_t k = 0; k < byte_count; ++k) out.emplace_back("\xef\xbf\xbd");
      }
      bytes.clear();
      byte_count = 0;
    };
    for (std::string& token : tokens) {
      if (token.size() == 6 && token.compare(0, 3, "<0x") == 0 && token[5] == '>' &&
          std::isxdigit(static_cast<unsigned char>(token[3])) &&
          std::isxdigit(static_cast<unsigned char>(token[4]))) {
        bytes += static_cast<char>(std::stoi(token.substr(3, 2), nullptr, 16));
        ++byte_count;
        continue;
      }
      flush();
      out.push_back(std::move(token));
    }
    flush();
    tokens.swap(out);
  }
};

class FuseDecoder : public Decoder {
 public:
  void decode(std::vector<std::string>& tokens) const override {
    std::string all;
    for (const auto& t : tokens) all += t;
    tokens.assign(1, all);
  }
};

class StripDecoder : public Decoder {
 public:
  StripDecoder(std::string content, size_t start, size_t stop)
      : content_(std::move(content)), start_(start), stop_(stop) {}
  void decode(std::vector<std::string>& tokens) const override {
    for (std::string& token : tokens) {
      for (size_t k = 0; k < start_ && token.compare(0, content_.size(), content_) == 0; ++k) {
        token.erase(0, content_.size());
      }
      for (size_t k = 0;
           k < stop_ && token.size() >= content_.size() &&
           token.compare(token.size() - content_.size(), content_.size(), content_) == 0;
           ++k) {
        token.resize(token.size() - content_.size());
      }
    }
  }

 private:
  std::string content_;
  size_t start_, stop_;
};

class ReplaceDecoder : public Decoder {
 public:
  ReplaceDecoder(std::string from, std::string to) : from_(std::move(from)), to_(std::move(to)) {}
  void decode(std::vector<std::string>& tokens) const override {
    for (std::string& token : tokens) replace_all(token, from_, to_);
  }

 private:
  std::string from_, to_;
};

// BPEDecoder: the end-of-word suffix becomes a space (none after the last token).
class BpeSuffixDecoder : public Decoder {
 public:
  explicit BpeSuffixDecoder(std::string suffix) : suffix_(std::move(suffix)) {}
  void decode(std::vector<std::string>& tokens) const override {
    for (size_t i = 0; i < tokens.size(); ++i) {
      replace_all(tokens[i], suffix_, i + 1 == tokens.size() ? "" : " ");
    }
  }

 private:
  std::string suffix_;
};

class SequenceDecoder : public Decoder {
 public:
  explicit SequenceDecoder(std::vector<std::unique_ptr<Decoder>> parts)
      : parts_(std::move(parts)) {}
  void decode(std::vector<std::string>& tokens) const override {
    for (const auto& part : parts_) part->decode(tokens);
  }

 private:
  std::vector<std::unique_ptr<Decoder>> parts_;
};

}  // namespace

std::unique_ptr<Decoder> make_decoder(const JsonNode& node) {
  const std::string type = node.at("type").as_string();
  if (type == "ByteLevel") return std::make_unique<ByteLevelDecoder>();
  if (type == "WordPiece") {
    return std::make_unique<WordPieceDecoder>(node.get_string("prefix", "##"),
                                              node.get_bool("cleanup", true));
  }
  if (type == "Metaspace") {
    const std::string scheme = node.get_string(
        "prepend_scheme", node.get_bool("add_prefix_space", true) ? "always" : "never");
    return std::make_unique<MetaspaceDecoder>(node.get_string("replacement", "\xe2\x96\x81"),
                                              scheme != "never");
  }
  if (type == "ByteFallback") return std::make_unique<ByteFallbackDecoder>();
  if (type == "Fuse") return std::make_unique<FuseDecoder>();
  if (type == "Strip") {
    return std::make_unique<StripDecoder>(node.get_string("content", " "), node.get_int("start", 0),
                                          node.get_int("stop", 0));
  }
  if (type == "Replace") {
    const JsonNode pattern = node.at("pattern");
    auto literal = pattern.find("String");
    if (!literal)
      pattern.fail("must be {\"String\": ...}; regex patterns are not supported in decoders");
    return std::make_unique<ReplaceDecoder>(literal->as_string(), node.at("content").as_string());
  }
  if (type == "BPEDecoder")
    return std::make_unique<BpeSuffixDecoder>(node.get_string("suffix", "</w>"));
  if (type == "Sequence") {
    const JsonNode list = node.at("decoders");
    std::vector<std::unique_ptr<Decoder>> parts;
    for (size_t i = 0; i < list.size(); ++i) parts.push_back(make_decoder(list.at(i)));
    return std::make_unique<SequenceDecoder>(std::move(parts));
  }
  node.at("type").fail(str("\"", type,
                           "\" is not supported; supported: ByteLevel, WordPiece, Metaspace, "
                           "ByteFallback, Fuse, Strip, Replace, BPEDecoder, Sequence"));
}

std::unique_ptr<Decoder> make_sentencepiece_decoder() {
  std::vector<std::unique_ptr<Decoder>> parts;
  parts.push_back(std::make_unique<ByteFallbackDecoder>());
  parts.push_back(std::make_unique<FuseDecoder>());
  parts.push_back(std::make_unique<MetaspaceDecoder>("\xe2\x96\x81", true));
  return std::make_unique<SequenceDecoder>(std::move(parts));
}

}  // namespace stunt::io::tokenizer_detail
