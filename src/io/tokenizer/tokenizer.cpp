// stunt::io::Tokenizer: added-token splitting, the pipeline run, post-processing, decoding.
#include "stunt/io/tokenizer.h"

#include "stunt/io/gguf.h"
#include "stunt/io/gguf_tokenizer.h"

#include <fstream>
#include <nlohmann/json.hpp>

#include "detail/tokenizer_impl.h"
#include "detail/unicode.h"
#include "stunt/core/error.h"

namespace stunt::io {
namespace tokenizer_detail {

void AddedTokenMatcher::add(std::string_view content, size_t index) {
  if (content.empty()) return;
  int64_t node = 0;
  for (unsigned char c : content) {
    auto [it, inserted] = edges_.emplace((static_cast<uint64_t>(node) << 8) | c,
                                         static_cast<int64_t>(terminal_.size()));
    if (inserted) terminal_.push_back(-1);
    node = it->second;
  }
  if (terminal_[node] < 0) terminal_[node] = static_cast<int64_t>(index);
  first_byte_[static_cast<unsigned char>(content[0])] = true;
}

std::pair<size_t, size_t> AddedTokenMatcher::longest_at(std::string_view text, size_t pos) const {
  std::pair<size_t, size_t> best{0, 0};
  if (!first_byte_[static_cast<unsigned char>(text[pos])]) return best;
  int64_t node = 0;
  for (size_t i = pos; i < text.size(); ++i) {
    auto it = edges_.find((static_cast<uint64_t>(node) << 8) | static_cast<unsigned char>(text[i]));
    if (it == edges_.end()) break;
    node = it->second;
    if (terminal_[node] >= 0) best = {static_cast<size_t>(terminal_[node]), i + 1 - pos};
  }
  return best;
}

namespace {

uint32_t last_code_point(std::string_view text) {
  size_t start = text.size() - 1;
  while (start > 0 && (static_cast<unsigned char>(text[start]) & 0xc0) == 0x80) --start;
  return next_code_point(text, start);
}

// A segment of the input: text to tokenize, or an added token.
struct Segment {
  Piece piece;
  std::optional<int64_t> id;
};

// HF AddedVocabulary::find_matches: splits `text` around the added tokens of `matcher`.
void split_added(const TokenizerImpl& impl, const AddedTokenMatcher& matcher, const Piece& text,
                 std::vector<Segment>& out) {
  const std::string& s = text.text;
  size_t start_offset = 0;
  if (!matcher.empty()) {
    for (size_t pos = 0; pos < s.size();) {
      auto [index, length] = matcher.longest_at(s, pos);
      if (length == 0) {
        ++pos;
        continue;
      }
      const AddedToken& token = impl.added_tokens[index];
      size_t start = pos, stop = pos + length;
      pos = stop;
      if (token.single_word) {
        size_t k = stop;
        const bool start_space =
            start == 0 || !is_alphanumeric(last_code_point(s.substr(0, start)));
        const bool stop_space = stop == s.size() || !is_alphanumeric(next_code_point(s, k));
        if (!start_space || !stop_space) continue;
      }
      if (token.lstrip) {
        size_t new_start = start;
        while (new_start > start_offset) {
          size_t begin = new_start - 1;
          while (begin > 0 && (static_cast<unsigned char>(s[begin]) & 0xc0) == 0x80) --begin;
          size_t k = begin;
          if (!is_whitespace(next_code_point(s, k))) break;
          new_start = begin;
        }
        start = new_start;
      }
      if (token.rstrip) {
        while (stop < s.size()) {
          size_t k = stop;
          if (!is_whitespace(next_code_point(s, k))) break;
          stop = k;
        }
        pos = stop;
      }
      if (start > start_offset) {
        out.push_back({Piece{s.substr(start_offset, start - start_offset),
                             text.at_start && start_offset == 0},
                       {}});
      }
      out.push_back({Piece{}, token.id});
      start_offset = stop;
    }
  }
  if (start_offset < s.size()) {
    out.push_back({Piece{s.substr(start_offset), text.at_start && start_offset == 0}, {}});
  }
}

}  // namespace

void TokenizerImpl::index_added_tokens() {
  for (size_t i = 0; i < added_tokens.size(); ++i) {
    const AddedToken& token = added_tokens[i];
    (token.normalized ? normalized_matcher : raw_matcher).add(token.content, i);
    added_by_id.emplace(token.id, i);
  }
}

void TokenizerImpl::guess_special_ids() {
  if (!bos_id && !prefix_ids.empty()) bos_id = prefix_ids.front();
  if (!eos_id && !suffix_ids.empty()) eos_id = suffix_ids.back();
  auto first_known = [&](std::initializer_list<const char*> names) -> std::optional<int64_t> {
    for (const char* name : names) {
      for (const AddedToken& token : added_tokens)
        if (token.content == name) return token.id;
    }
    return std::nullopt;
  };
  if (!pad_id) pad_id = first_known({"[PAD]", "<pad>", "<|pad|>", "<|finetune_right_pad_id|>"});
  if (!bos_id) bos_id = first_known({"<s>", "<|begin_of_text|>", "<bos>", "<|startoftext|>"});
  if (!eos_id) eos_id = first_known({"</s>", "<|end_of_text|>", "<|endoftext|>", "<eos>"});
}

std::vector<int64_t> TokenizerImpl::encode(std::string_view raw, bool add_special_tokens) const {
  std::string sanitized;
  if (!is_valid_utf8(raw)) {
    sanitized = sanitize_utf8(raw);
    raw = sanitized;
  }
  std::vector<int64_t> ids;
  if (add_special_tokens) ids = prefix_ids;
  std::vector<Segment> segments, normalized_segments;
  split_added(*this, raw_matcher, Piece{std::string(raw), true}, segments);
  std::vector<Piece> words;
  for (Segment& segment : segments) {
    if (segment.id) {
      ids.push_back(*segment.id);
      continue;
    }
    if (normalizer) normalizer->normalize(segment.piece.text);
    normalized_segments.clear();
    split_added(*this, normalized_matcher, segment.piece, normalized_segments);
    for (Segment& part : normalized_segments) {
      if (part.id) {
        ids.push_back(*part.id);
        continue;
      }
      words.clear();
      words.push_back(std::move(part.piece));
      if (pre_tokenizer) pre_tokenizer->pre_tokenize(words);
      for (const Piece& word : words) {
        if (!word.text.empty()) model->tokenize(word.text, ids);
      }
    }
  }
  if (add_special_tokens) ids.insert(ids.end(), suffix_ids.begin(), suffix_ids.end());
  return ids;
}

std::string TokenizerImpl::decode(const std::vector<int64_t>& ids, bool skip_special_tokens) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int64_t id : ids) {
    auto added = added_by_id.find(id);
    if (added != added_by_id.end()) {
      if (skip_special_tokens && added_tokens[added->second].special) continue;
      tokens.push_back(added_tokens[added->second].content);
      continue;
    }
    const std::string_view token = model->id_to_token(id);
    if (!token.empty()) tokens.emplace_back(token);
  }
  if (decoder) {
    decoder->decode(tokens);
    std::string text;
    for (const auto& t : tokens) text += t;
    return text;
  }
  std::string text;
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (i > 0) text += ' ';
    text += tokens[i];
  }
  return text;
}

std::string read_file_bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  STUNT_CHECK_AS(IoError, in.good(), "cannot open tokenizer file ", path.string());
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  STUNT_CHECK_AS(IoError, !in.bad(), "cannot read tokenizer file ", path.string());
  return bytes;
}

}  // namespace tokenizer_detail

using tokenizer_detail::TokenizerImpl;

Tokenizer::Tokenizer(std::shared_ptr<const TokenizerImpl> impl) : impl_(std::move(impl)) {}

Tokenizer Tokenizer::from_file(const std::filesystem::path& path) {
  STUNT_CHECK_AS(IoError, std::filesystem::is_regular_file(path), "tokenizer file ", path.string(),
                 " does not exist or is not a file");
  // tokenizer.json starts with '{'; a SentencePiece ModelProto starts with field 1 (0x0a).
  std::ifstream in(path, std::ios::binary);
  char first = 0;
  while (in.get(first) && (first == ' ' || first == '\n' || first == '\r' || first == '\t')) {
  }
  if (first == '{') return Tokenizer(tokenizer_detail::load_tokenizer_json(path));
  if (first == 'G') {
    char magic[4] = {};
    std::ifstream head(path, std::ios::binary);
    head.read(magic, 4);
    if (std::string_view(magic, 4) == "GGUF") {
      const auto file = GgufFile::open(path);
      auto impl = tokenizer_detail::parse_tokenizer_json(gguf_tokenizer_json(*file),
                                                         path.string() + " (GGUF vocabulary)");
      // The file names its special tokens by id; no guessing from token names.
      const int64_t vocab = impl->model->vocab_size();
      auto special = [&](const char* role) -> std::optional<int64_t> {
        const std::string key = str("tokenizer.ggml.", role, "_token_id");
        if (file->find(key) == nullptr) return std::nullopt;
        const int64_t id = file->integer(key);
        STUNT_CHECK_AS(FormatError, id >= 0 && id < vocab, path.string(), ": metadata ", key, " = ",
                       id, " is outside the vocabulary of ", vocab, " tokens");
        return id;
      };
      if (auto id = special("bos")) impl->bos_id = id;
      if (auto id = special("eos")) impl->eos_id = id;
      if (auto id = special("padding")) impl->pad_id = id;
      return Tokenizer(impl);
    }
  }
  STUNT_CHECK_AS(FormatError, path.extension() == ".model" || first == 0x0a, path.string(),
                 ": neither a tokenizer.json (a JSON object) nor a SentencePiece .model");
  return Tokenizer(tokenizer_detail::load_sentencepiece_model(path));
}

Tokenizer Tokenizer::from_folder(const std::filesystem::path& folder) {
  STUNT_CHECK_AS(IoError, std::filesystem::is_directory(folder), "tokenizer folder ",
                 folder.string(), " does not exist");
  std::shared_ptr<TokenizerImpl> impl;
  if (std::filesystem::exists(folder / "tokenizer.json")) {
    impl = tokenizer_detail::load_tokenizer_json(folder / "tokenizer.json");
  } else {
    for (const char* name : {"spiece.model", "tokenizer.model"}) {
      if (std::filesystem::exists(folder / name)) {
        impl = tokenizer_detail::load_sentencepiece_model(folder / name);
        break;
      }
    }
  }
  STUNT_CHECK_AS(IoError, impl != nullptr, folder.string(),
                 " has no tokenizer.json, spiece.model or tokenizer.model");
  // The special tokens a model's config names override our guesses.
  for (const char* config : {"special_tokens_map.json", "tokenizer_config.json"}) {
    const auto file = folder / config;
    if (!std::filesystem::exists(file)) continue;
    const auto j = nlohmann::json::parse(tokenizer_detail::read_file_bytes(file), nullptr, false);
    if (!j.is_object()) continue;  // not ours to validate; the tokenizer itself is complete
    auto token_id = [&](const char* key) -> std::optional<int64_t> {
      auto it = j.find(key);
      if (it == j.end()) return std::nullopt;
      std::string name;
      if (it->is_string()) name = it->get<std::string>();
      if (it->is_object() && it->contains("content") && (*it)["content"].is_string()) {
        name = (*it)["content"].get<std::string>();
      }
      if (name.empty()) return std::nullopt;
      for (const auto& token : impl->added_tokens)
        if (token.content == name) return token.id;
      return impl->model->token_to_id(name);
    };
    if (auto id = token_id("pad_token")) impl->pad_id = id;
    if (auto id = token_id("bos_token")) impl->bos_id = id;
    if (auto id = token_id("eos_token")) impl->eos_id = id;
  }
  return Tokenizer(impl);
}

Tokenizer Tokenizer::from_json(const std::string& json_text, const std::string& source) {
  return Tokenizer(tokenizer_detail::parse_tokenizer_json(json_text, source));
}

Tokenizer Tokenizer::from_path(const std::filesystem::path& path) {
  return std::filesystem::is_directory(path) ? from_folder(path) : from_file(path);
}

std::vector<int64_t> Tokenizer::encode(std::string_view text, bool add_special_tokens) const {
  return impl_->encode(text, add_special_tokens);
}

std::string Tokenizer::decode(const std::vector<int64_t>& ids, bool skip_special_tokens) const {
  // Decoders that join raw pieces (WordPiece, Metaspace, none) can yield ill-formed UTF-8 from
  // a malformed vocabulary; callers get well-formed text (U+FFFD) whatever the vocabulary.
  return tokenizer_detail::sanitize_utf8(impl_->decode(ids, skip_special_tokens));
}

int64_t Tokenizer::vocab_size() const {
  int64_t size = impl_->model->vocab_size();
  for (const auto& token : impl_->added_tokens) size = std::max(size, token.id + 1);
  return size;
}

std::optional<int64_t> Tokenizer::token_to_id(std::string_view token) const {
  for (const auto& added : impl_->added_tokens)
    if (added.content == token) return added.id;
  return impl_->model->token_to_id(token);
}

std::optional<std::string> Tokenizer::id_to_token(int64_t id) const {
  auto added = impl_->added_by_id.find(id);
  if (added != impl_->added_by_id.end()) return impl_->added_tokens[added->second].content;
  const std::string_view token = impl_->model->id_to_token(id);
  if (token.empty()) return std::nullopt;
  return std::string(token);
}

std::optional<int64_t> Tokenizer::pad_id() const { return impl_->pad_id; }
std::optional<int64_t> Tokenizer::bos_id() const { return impl_->bos_id; }
std::optional<int64_t> Tokenizer::eos_id() const { return impl_->eos_id; }
std::string Tokenizer::kind() const { return impl_->model->kind(); }

}  // namespace stunt::io
