// Datasets: line reading, JSONL records, TextDataset, calibration sampling and padding.
// Token windows and the streaming encoder are in dataset_windows.cpp.
#include "stunt/io/dataset.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>

#include "detail/dataset_reader.h"
#include "stunt/core/error.h"

namespace stunt::io {
namespace dataset_detail {

namespace {
// Read size of LineReader's buffer (bytes).
constexpr size_t kReadChunkBytes = size_t{1} << 16;
}  // namespace

LineReader::LineReader(const std::filesystem::path& path)
    : in_(path, std::ios::binary), name_(path.string()), buffer_(kReadChunkBytes) {
  STUNT_CHECK_AS(IoError, in_.good() && !std::filesystem::is_directory(path), "cannot open ", name_,
                 " for reading; check that the file exists and is readable");
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  size_bytes_ = ec ? 0 : static_cast<uint64_t>(size);
}

bool LineReader::fill() {
  if (eof_) return false;
  if (begin_ > 0) {
    std::memmove(buffer_.data(), buffer_.data() + begin_, end_ - begin_);
    end_ -= begin_;
    begin_ = 0;
  }
  if (end_ == buffer_.size()) buffer_.resize(buffer_.size() * 2);
  in_.read(buffer_.data() + end_, static_cast<std::streamsize>(buffer_.size() - end_));
  const auto got = static_cast<size_t>(in_.gcount());
  STUNT_CHECK_AS(IoError, !in_.bad(), "cannot read ", name_, " (an I/O error)");
  if (got == 0) eof_ = true;
  end_ += got;
  return got > 0;
}

bool LineReader::next(std::string& line, bool& had_newline) {
  size_t scanned = begin_;
  for (;;) {
    const char* found =
        static_cast<const char*>(std::memchr(buffer_.data() + scanned, '\n', end_ - scanned));
    if (found != nullptr) {
      const size_t stop = static_cast<size_t>(found - buffer_.data());
      size_t length = stop - begin_;
      if (length > 0 && buffer_[stop - 1] == '\r') --length;
      line.assign(buffer_.data() + begin_, length);
      bytes_read_ += stop + 1 - begin_;
      begin_ = stop + 1;
      had_newline = true;
      ++line_number_;
      return true;
    }
    scanned = end_;
    STUNT_CHECK_AS(FormatError, end_ - begin_ <= kMaxLineBytes, name_, ":", line_number_ + 1,
                   ": line longer than ", kMaxLineBytes >> 20,
                   " MiB; is this a text file? Split long documents into several lines");
    const size_t offset = scanned - begin_;
    if (!fill()) break;
    scanned = begin_ + offset;
  }
  if (begin_ == end_) return false;
  line.assign(buffer_.data() + begin_, end_ - begin_);
  bytes_read_ += end_ - begin_;
  begin_ = end_;
  had_newline = false;
  ++line_number_;
  return true;
}

JsonlRecord parse_jsonl_record(std::string_view line, const std::string& file, int64_t line_number,
                               int64_t vocab_size) {
  const auto where = [&] { return str(file, ":", line_number, ": "); };
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(line);
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(str(where(), "not valid JSON (", e.what(),
                          "); each line of a JSONL file must be one JSON object"));
  }
  STUNT_CHECK_AS(FormatError, j.is_object(), where(), "expected a JSON object, got ",
                 j.type_name());
  JsonlRecord record;
  const auto text = j.find("text");
  const auto ids = j.find("input_ids");
  const bool has_text = text != j.end() && !text->is_null();
  const bool has_ids = ids != j.end() && !ids->is_null();
  STUNT_CHECK_AS(FormatError, !(has_text && has_ids), where(),
                 "has both \"text\" and \"input_ids\"; keep one of them");
  if (has_text && text->is_string()) {
    record.text = text->get<std::string>();
  } else if (has_ids && ids->is_array()) {
    std::vector<int64_t> values;
    values.reserve(ids->size());
    for (size_t i = 0; i < ids->size(); ++i) {
      const auto& v = (*ids)[i];
      STUNT_CHECK_AS(FormatError, v.is_number_integer(), where(), "\"input_ids\"[", i,
                     "] is not an integer (", v.dump(), ")");
      const bool in_range = v.is_number_unsigned()
                                ? v.get<uint64_t>() < static_cast<uint64_t>(vocab_size)
                                : v.get<int64_t>() >= 0 && v.get<int64_t>() < vocab_size;
      STUNT_CHECK_AS(FormatError, in_range, where(), "\"input_ids\"[", i, "] = ", v.dump(),
                     " is outside the tokenizer's vocabulary [0, ", vocab_size, ")");
      values.push_back(v.get<int64_t>());
    }
    record.input_ids = std::move(values);
  } else {
    throw FormatError(
        str(where(), "expected \"text\" (string) or \"input_ids\" (array of integers)"));
  }
  const auto label = j.find("label");
  if (label != j.end() && !label->is_null()) {
    const bool integer = label->is_number_unsigned() ? label->get<uint64_t>() <= uint64_t{INT64_MAX}
                                                     : label->is_number_integer();
    STUNT_CHECK_AS(FormatError, integer, where(),
                   "expected \"label\" to be an integer (a class index), got ", label->dump());
    record.label = label->get<int64_t>();
  }
  return record;
}

namespace {
// Python's str.isspace() beyond ASCII: U+0085, U+00A0, U+1680, U+2000..U+200A, U+2028,
// U+2029, U+202F, U+205F, U+3000.
bool is_unicode_space(uint32_t cp) {
  return cp == 0x85 || cp == 0xa0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200a) ||
         cp == 0x2028 || cp == 0x2029 || cp == 0x202f || cp == 0x205f || cp == 0x3000;
}
}  // namespace

bool is_blank(std::string_view text) {
  for (size_t i = 0; i < text.size();) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x80) {
      // \t \n \v \f \r, the separators \x1c..\x1f, and the space.
      if (!((c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20))) return false;
      ++i;
      continue;
    }
    const size_t n = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
    if (n == 1 || i + n > text.size()) return false;
    uint32_t cp = c & (0x7f >> n);
    for (size_t k = 1; k < n; ++k)
      cp = (cp << 6) | (static_cast<unsigned char>(text[i + k]) & 0x3f);
    if (!is_unicode_space(cp)) return false;
    i += n;
  }
  return true;
}

DatasetFormat resolve_format(DatasetFormat format, const std::filesystem::path& path) {
  if (format != DatasetFormat::Auto) return format;
  const auto ext = path.extension().string();
  return ext == ".jsonl" || ext == ".ndjson" ? DatasetFormat::Jsonl : DatasetFormat::Lines;
}

RowReader::RowReader(const std::filesystem::path& path, DatasetFormat format)
    : lines_(path), format_(resolve_format(format, path)) {}

bool RowReader::next(std::string& row) {
  bool had_newline = false;
  if (format_ == DatasetFormat::Lines) {
    if (!lines_.next(line_, had_newline)) return false;
    // HF wikitext builder: `for row in f: yield {"text": row if row.strip() else ""}`.
    row.clear();
    if (!is_blank(line_)) {
      row = line_;
      if (had_newline) row += '\n';
    }
    return true;
  }
  while (lines_.next(line_, had_newline)) {
    if (is_blank(line_)) continue;
    auto record = parse_jsonl_record(line_, lines_.name(), lines_.line_number(),
                                     std::numeric_limits<int64_t>::max());
    STUNT_CHECK_AS(FormatError, record.text.has_value(), lines_.name(), ":", lines_.line_number(),
                   ": windows and calibration samples are cut from \"text\"; this record has "
                   "only \"input_ids\"");
    row = std::move(*record.text);
    return true;
  }
  return false;
}

}  // namespace dataset_detail

using dataset_detail::LineReader;

std::pair<std::vector<int64_t>, std::vector<int64_t>> special_token_affixes(
    const Tokenizer& tokenizer) {
  // The public Tokenizer tells the post-processor's tokens apart only through a probe.
  const auto around = tokenizer.encode("", true);
  const auto body = tokenizer.encode("a", false);
  const auto full = tokenizer.encode("a", true);
  size_t split = around.size();
  for (size_t p = 0; p <= around.size(); ++p) {
    std::vector<int64_t> candidate(around.begin(), around.begin() + static_cast<ptrdiff_t>(p));
    candidate.insert(candidate.end(), body.begin(), body.end());
    candidate.insert(candidate.end(), around.begin() + static_cast<ptrdiff_t>(p), around.end());
    if (candidate == full) {
      split = p;
      break;
    }
  }
  return {std::vector<int64_t>(around.begin(), around.begin() + static_cast<ptrdiff_t>(split)),
          std::vector<int64_t>(around.begin() + static_cast<ptrdiff_t>(split), around.end())};
}

struct TextDataset::State {
  LineReader lines;
  Tokenizer tokenizer;
  DatasetOptions options;
  DatasetFormat format;
  std::string line;

  std::vector<int64_t> encode(const std::string& text) const {
    return encode_truncated(tokenizer, text, options.max_length, options.add_special_tokens);
  }
};

TextDataset::TextDataset(std::unique_ptr<State> state) : state_(std::move(state)) {}
TextDataset::TextDataset(TextDataset&&) noexcept = default;
TextDataset& TextDataset::operator=(TextDataset&&) noexcept = default;
TextDataset::~TextDataset() = default;

std::vector<int64_t> encode_truncated(const Tokenizer& tokenizer, std::string_view text,
                                      int64_t max_length, bool add_special_tokens) {
  if (max_length <= 0) return tokenizer.encode(text, add_special_tokens);
  std::vector<int64_t> prefix, suffix;
  if (add_special_tokens) std::tie(prefix, suffix) = special_token_affixes(tokenizer);
  std::vector<int64_t> body = tokenizer.encode(text, false);
  const int64_t room = max_length - static_cast<int64_t>(prefix.size() + suffix.size());
  if (static_cast<int64_t>(body.size()) > room) {
    body.resize(static_cast<size_t>(std::max<int64_t>(room, 0)));
  }
  prefix.insert(prefix.end(), body.begin(), body.end());
  prefix.insert(prefix.end(), suffix.begin(), suffix.end());
  return prefix;
}

void for_each_jsonl_record(
    const std::filesystem::path& path,
    const std::function<void(const nlohmann::json& record, int64_t line)>& visit) {
  LineReader lines(path);
  std::string line;
  bool had_newline = false;
  while (lines.next(line, had_newline)) {
    if (dataset_detail::is_blank(line)) continue;
    const int64_t number = lines.line_number();
    nlohmann::json record;
    try {
      record = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      throw FormatError(str(lines.name(), ":", number, ": not valid JSON (", e.what(),
                            "); each line of a JSONL file must be one JSON object"));
    }
    STUNT_CHECK_AS(FormatError, record.is_object(), lines.name(), ":", number,
                   ": expected a JSON object, got ", record.type_name());
    visit(record, number);
  }
}

TextDataset TextDataset::open(const std::filesystem::path& path, const Tokenizer& tokenizer,
                              const DatasetOptions& options) {
  return TextDataset(
      std::unique_ptr<State>(new State{LineReader(path),
                                       tokenizer,
                                       options,
                                       dataset_detail::resolve_format(options.format, path),
                                       {}}));
}

std::optional<Sample> TextDataset::next() {
  State& s = *state_;
  bool had_newline = false;
  while (s.lines.next(s.line, had_newline)) {
    if (dataset_detail::is_blank(s.line)) continue;
    Sample sample;
    sample.line = s.lines.line_number();
    if (s.format == DatasetFormat::Lines) {
      sample.input_ids = s.encode(s.line);
      return sample;
    }
    auto record = dataset_detail::parse_jsonl_record(s.line, s.lines.name(), sample.line,
                                                     s.tokenizer.vocab_size());
    sample.input_ids = record.text ? s.encode(*record.text) : std::move(*record.input_ids);
    if (s.options.max_length > 0 &&
        static_cast<int64_t>(sample.input_ids.size()) > s.options.max_length) {
      sample.input_ids.resize(static_cast<size_t>(s.options.max_length));
    }
    sample.label = record.label;
    return sample;
  }
  return std::nullopt;
}

std::vector<Sample> TextDataset::read(int64_t max_samples) {
  std::vector<Sample> out;
  while (max_samples < 0 || static_cast<int64_t>(out.size()) < max_samples) {
    auto sample = next();
    if (!sample) break;
    out.push_back(std::move(*sample));
  }
  return out;
}

uint64_t TextDataset::bytes_read() const { return state_->lines.bytes_read(); }
uint64_t TextDataset::size_bytes() const { return state_->lines.size_bytes(); }
DatasetFormat TextDataset::format() const { return state_->format; }

std::vector<int64_t> calibration_starts(int64_t n_tokens, int64_t count, int64_t seq_len,
                                        uint64_t seed) {
  STUNT_CHECK(count >= 0, "calibration sample count must be >= 0, got ", count);
  STUNT_CHECK(seq_len > 0, "calibration seq_len must be > 0, got ", seq_len);
  STUNT_CHECK(n_tokens >= seq_len, "the calibration text has ", n_tokens,
              " tokens, fewer than seq_len=", seq_len,
              "; use a larger file or a shorter sequence length");
  std::mt19937_64 rng(seed);
  const uint64_t range = static_cast<uint64_t>(n_tokens - seq_len) + 1;
  // Rejection sampling: draws below 2^64 mod range are refused, so x % range is exactly
  // uniform; (0 - range) % range is 2^64 mod range in unsigned arithmetic.
  const uint64_t threshold = (0 - range) % range;
  std::vector<int64_t> starts;
  starts.reserve(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) {
    uint64_t x = rng();
    while (x < threshold) x = rng();
    starts.push_back(static_cast<int64_t>(x % range));
  }
  return starts;
}

namespace {

// Calls `sink(ids)` with the ids of the file's token stream, chunk by chunk, until it returns
// false or the stream ends.
template <typename Sink>
void stream_tokens(const std::filesystem::path& path, const Tokenizer& tokenizer,
                   const DatasetOptions& options, Sink&& sink) {
  dataset_detail::RowReader rows(path, options.format);
  JoinedTextEncoder encoder(tokenizer,
                            JoinedTextOptions{.add_special_tokens = options.add_special_tokens,
                                              .chunk_bytes = options.chunk_bytes});
  std::string row;
  std::vector<int64_t> ids;
  bool more = true;
  while (more) {
    more = rows.next(row);
    if (more) {
      encoder.add_row(row);
    } else {
      encoder.finish();
    }
    ids.clear();
    encoder.take(ids);
    if (!ids.empty() && !sink(ids)) return;
  }
}

}  // namespace

std::vector<std::vector<int64_t>> calibration_samples(const std::filesystem::path& path,
                                                      const Tokenizer& tokenizer, int64_t count,
                                                      int64_t seq_len, uint64_t seed,
                                                      const DatasetOptions& options) {
  int64_t n_tokens = 0;
  stream_tokens(path, tokenizer, options, [&](const std::vector<int64_t>& ids) {
    n_tokens += static_cast<int64_t>(ids.size());
    return true;
  });
  STUNT_CHECK(n_tokens >= seq_len, path.string(), " has ", n_tokens,
              " tokens, fewer than the calibration seq_len=", seq_len,
              "; use a larger file or a shorter sequence length");
  const auto starts = calibration_starts(n_tokens, count, seq_len, seed);
  std::vector<std::vector<int64_t>> samples(starts.size());
  for (auto& sample : samples) sample.reserve(static_cast<size_t>(seq_len));
  const int64_t last_end =
      starts.empty() ? 0 : *std::max_element(starts.begin(), starts.end()) + seq_len;
  int64_t offset = 0;  // stream position of ids[0]
  if (last_end > 0) {
    stream_tokens(path, tokenizer, options, [&](const std::vector<int64_t>& ids) {
      const int64_t chunk_end = offset + static_cast<int64_t>(ids.size());
      for (size_t i = 0; i < starts.size(); ++i) {
        const int64_t from = std::max(starts[i], offset);
        const int64_t to = std::min(starts[i] + seq_len, chunk_end);
        if (from < to) {
          samples[i].insert(samples[i].end(), ids.begin() + (from - offset),
                            ids.begin() + (to - offset));
        }
      }
      offset = chunk_end;
      return offset < last_end;
    });
  }
  for (const auto& sample : samples) {
    STUNT_CHECK(static_cast<int64_t>(sample.size()) == seq_len, path.string(),
                " changed while it was read (a second pass found fewer tokens than the first)");
  }
  return samples;
}

TokenBatch pad_batch(const std::vector<std::vector<int64_t>>& samples, int64_t pad_id) {
  size_t longest = 0;
  for (const auto& s : samples) longest = std::max(longest, s.size());
  const auto b = static_cast<int64_t>(samples.size());
  const auto n = static_cast<int64_t>(longest);
  TokenBatch batch;
  batch.input_ids = at::full({b, n}, pad_id, at::kLong);
  batch.attention_mask = at::zeros({b, n}, at::kLong);
  auto ids = batch.input_ids.accessor<int64_t, 2>();
  auto mask = batch.attention_mask.accessor<int64_t, 2>();
  for (int64_t i = 0; i < b; ++i) {
    const auto& s = samples[static_cast<size_t>(i)];
    for (size_t j = 0; j < s.size(); ++j) {
      ids[i][static_cast<int64_t>(j)] = s[j];
      mask[i][static_cast<int64_t>(j)] = 1;
    }
  }
  return batch;
}

TokenBatch pad_batch(const std::vector<Sample>& samples, int64_t pad_id) {
  std::vector<std::vector<int64_t>> ids;
  ids.reserve(samples.size());
  size_t labelled = 0;
  for (const auto& s : samples) {
    ids.push_back(s.input_ids);
    if (s.label) ++labelled;
  }
  TokenBatch batch = pad_batch(ids, pad_id);
  if (labelled == 0) return batch;
  for (const auto& s : samples) {
    STUNT_CHECK(s.label.has_value(), "sample at line ", s.line,
                " has no \"label\" while others in its batch have one; label every record "
                "or none");
  }
  batch.labels = at::empty({static_cast<int64_t>(samples.size())}, at::kLong);
  auto labels = batch.labels.accessor<int64_t, 1>();
  for (size_t i = 0; i < samples.size(); ++i) labels[static_cast<int64_t>(i)] = *samples[i].label;
  return batch;
}

}  // namespace stunt::io
