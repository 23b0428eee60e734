// Reads a SentencePiece .model (a serialized sentencepiece.ModelProto) with a hand-written
// protobuf reader: pieces, trainer_spec (model type, special ids, byte_fallback) and
// normalizer_spec (precompiled charsmap, whitespace rules). Field numbers from
// sentencepiece_model.proto.
#include <cstring>

#include "detail/tokenizer_impl.h"
#include "stunt/core/error.h"

namespace stunt::io::tokenizer_detail {
namespace {

enum WireType { kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kFixed32 = 5 };

class ProtoReader {
 public:
  ProtoReader(std::string_view data, const std::string& file, std::string message)
      : data_(data), file_(file), message_(std::move(message)) {}
  bool done() const { return pos_ >= data_.size(); }
  // Next field: (number, wire type).
  std::pair<uint32_t, int> next_field() {
    const uint64_t key = varint();
    return {static_cast<uint32_t>(key >> 3), static_cast<int>(key & 7)};
  }
  uint64_t varint() {
    uint64_t value = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      check(pos_ < data_.size(), "ends inside a varint");
      const auto b = static_cast<unsigned char>(data_[pos_++]);
      value |= static_cast<uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) return value;
    }
    fail("has a varint longer than 10 bytes");
  }
  std::string_view bytes() {
    const uint64_t length = varint();
    check(length <= data_.size() - pos_, "has a field longer than the data left");
    std::string_view out = data_.substr(pos_, length);
    pos_ += length;
    return out;
  }
  float fixed32_float() {
    check(data_.size() - pos_ >= 4, "ends inside a float");
    uint32_t bits = 0;
    for (int k = 3; k >= 0; --k) bits = (bits << 8) | static_cast<unsigned char>(data_[pos_ + k]);
    pos_ += 4;
    float value;
    std::memcpy(&value, &bits, sizeof value);
    return value;
  }
  void skip(int wire_type) {
    switch (wire_type) {
      case kVarint:
        varint();
        return;
      case kFixed64:
        check(data_.size() - pos_ >= 8, "ends inside a fixed64");
        pos_ += 8;
        return;
      case kLengthDelimited:
        bytes();
        return;
      case kFixed32:
        check(data_.size() - pos_ >= 4, "ends inside a fixed32");
        pos_ += 4;
        return;
      default:
        fail(str("has wire type ", wire_type, ", which is not valid protobuf"));
    }
  }
  void expect(int wire_type, int expected, uint32_t field) {
    check(wire_type == expected,
          str("field ", field, " has wire type ", wire_type, ", expected ", expected));
  }
  [[noreturn]] void fail(const std::string& what) const {
    throw FormatError(str(file_, ": not a valid SentencePiece model: ", message_, " ", what,
                          " (at byte ", pos_, ")"));
  }
  void check(bool ok, const std::string& what) const {
    if (!ok) fail(what);
  }

 private:
  std::string_view data_;
  size_t pos_ = 0;
  const std::string& file_;
  std::string message_;
};

int64_t as_int32(uint64_t v) { return static_cast<int32_t>(static_cast<uint32_t>(v)); }

}  // namespace

std::shared_ptr<TokenizerImpl> load_sentencepiece_model(const std::filesystem::path& path) {
  const std::string data = read_file_bytes(path);
  const std::string file = path.string();
  std::vector<UnigramPiece> pieces;
  int64_t model_type = 1;  // TrainerSpec.ModelType: UNIGRAM = 1, BPE, WORD, CHAR
  bool byte_fallback = false;
  int64_t unk_id = 0, bos_id = 1, eos_id = 2, pad_id = -1;  // TrainerSpec defaults
  SentencePieceNormalizerOptions normalizer;

  ProtoReader model(data, file, "ModelProto");
  while (!model.done()) {
    auto [field, wire] = model.next_field();
    if (field == 1) {  // repeated SentencePiece pieces
      model.expect(wire, kLengthDelimited, field);
      ProtoReader piece(model.bytes(), file, str("piece ", pieces.size()));
      UnigramPiece p;
      while (!piece.done()) {
        auto [f, w] = piece.next_field();
        if (f == 1) {
          piece.expect(w, kLengthDelimited, f);
          p.piece = std::string(piece.bytes());
        } else if (f == 2) {
          piece.expect(w, kFixed32, f);
          p.score = piece.fixed32_float();
        } else if (f == 3) {
          piece.expect(w, kVarint, f);
          const uint64_t type = piece.varint();
          piece.check(type >= 1 && type <= 6, str("has type ", type, "; expected 1..6"));
          p.type = static_cast<UnigramPiece::Type>(type);
        } else {
          piece.skip(w);
        }
      }
      pieces.push_back(std::move(p));
    } else if (field == 2) {  // TrainerSpec
      model.expect(wire, kLengthDelimited, field);
      ProtoReader spec(model.bytes(), file, "trainer_spec");
      while (!spec.done()) {
        auto [f, w] = spec.next_field();
        if (w != kVarint) {
          spec.skip(w);
          continue;
        }
        const uint64_t v = spec.varint();
        if (f == 3) model_type = as_int32(v);
        if (f == 35) byte_fallback = v != 0;
        if (f == 40) unk_id = as_int32(v);
        if (f == 41) bos_id = as_int32(v);
        if (f == 42) eos_id = as_int32(v);
        if (f == 43) pad_id = as_int32(v);
      }
    } else if (field == 3) {  // NormalizerSpec
      model.expect(wire, kLengthDelimited, field);
      ProtoReader spec(model.bytes(), file, "normalizer_spec");
      while (!spec.done()) {
        auto [f, w] = spec.next_field();
        if (f == 2 && w == kLengthDelimited) {
          normalizer.precompiled_charsmap = std::string(spec.bytes());
        } else if (w == kVarint && (f == 3 || f == 4 || f == 5)) {
          const bool v = spec.varint() != 0;
          if (f == 3) normalizer.add_dummy_prefix = v;
          if (f == 4) normalizer.remove_extra_whitespaces = v;
          if (f == 5) normalizer.escape_whitespaces = v;
        } else {
          spec.skip(w);
        }
      }
    } else {
      model.skip(wire);
    }
  }
  STUNT_CHECK_AS(FormatError, !pieces.empty(), file,
                 ": not a valid SentencePiece model: it has no pieces");
  STUNT_CHECK_AS(
      NotImplementedError, model_type == 1, file, ": SentencePiece model_type ",
      model_type == 2   ? "BPE"
      : model_type == 3 ? "WORD"
      : model_type == 4 ? "CHAR"
                        : "unknown",
      " is not supported; supported: UNIGRAM (convert the model to tokenizer.json to use it)");
  const auto n = static_cast<int64_t>(pieces.size());
  auto valid = [&](int64_t id) -> std::optional<int64_t> {
    return id >= 0 && id < n ? std::optional<int64_t>(id) : std::nullopt;
  };

  auto impl = std::make_shared<TokenizerImpl>();
  impl->source = file;
  impl->normalizer = make_sentencepiece_normalizer(normalizer, file);
  impl->decoder = make_sentencepiece_decoder();
  // Control pieces (<s>, </s>) never come from text; they decode as special tokens.
  for (int64_t id = 0; id < n; ++id) {
    if (pieces[id].type == UnigramPiece::Type::Control) {
      impl->added_tokens.push_back({pieces[id].piece, id, true, false, false, false, false});
    }
  }
  UnigramOptions options;
  options.unk_id = valid(unk_id);
  options.byte_fallback = byte_fallback;
  options.sentencepiece_rules = true;
  impl->model = make_unigram(std::move(pieces), options);
  impl->pad_id = valid(pad_id);
  impl->bos_id = valid(bos_id);
  impl->eos_id = valid(eos_id);
  // Index for decoding only: control pieces are not matched in text.
  for (size_t i = 0; i < impl->added_tokens.size(); ++i)
    impl->added_by_id.emplace(impl->added_tokens[i].id, i);
  return impl;
}

}  // namespace stunt::io::tokenizer_detail
