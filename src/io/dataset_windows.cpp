// The streaming encoder of "\n\n"-joined rows, and token windows over it.
#include <algorithm>
#include <tuple>

#include "detail/dataset_reader.h"
#include "stunt/core/error.h"
#include "stunt/io/dataset.h"

namespace stunt::io {
namespace {

// The separator GPTQ and llm-compressor join the rows of wikitext-2 with.
constexpr std::string_view kRowSeparator = "\n\n";
// Cut points tried, latest first, before tokenizing on without a cut.
constexpr int kMaxCutTries = 8;
// Bytes of text at least on each side of a cut that the check encodes.
constexpr size_t kVerifyContextBytes = 256;

bool is_ascii_space(char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; }

}  // namespace

JoinedTextEncoder::JoinedTextEncoder(Tokenizer tokenizer, JoinedTextOptions options)
    : tokenizer_(std::move(tokenizer)), options_(options) {
  if (options_.add_special_tokens) std::tie(prefix_, suffix_) = special_token_affixes(tokenizer_);
  ready_ = prefix_;
}

void JoinedTextEncoder::add_row(std::string_view row) {
  STUNT_ASSERT(!finished_, "add_row after finish");
  if (started_) pending_.append(kRowSeparator);
  started_ = true;
  row_starts_.push_back(pending_.size());
  pending_.append(row);
  cut_if_due();
}

bool JoinedTextEncoder::verified(size_t cut) const {
  // Left context: whole rows back to kVerifyContextBytes before the cut (or the text start).
  // (row_starts_ is sorted.)
  size_t from = 0;
  if (cut >= kVerifyContextBytes) {
    auto it = std::upper_bound(row_starts_.begin(), row_starts_.end(), cut - kVerifyContextBytes);
    if (it != row_starts_.begin()) from = *(it - 1);
  }
  // Right context: through the end of the row that holds the kVerifyContextBytes-th byte
  // after the cut, so that it reaches past the whitespace run.
  auto it = std::lower_bound(row_starts_.begin(), row_starts_.end(), cut + kVerifyContextBytes);
  const size_t to = it == row_starts_.end() ? pending_.size() : *it;
  const std::string_view text(pending_);
  const auto left = text.substr(from, cut - from);
  const auto right = text.substr(cut, to - cut);
  if (std::all_of(right.begin(), right.end(), is_ascii_space)) return false;
  const auto whole = tokenizer_.encode(text.substr(from, to - from), false);
  auto parts = tokenizer_.encode(left, false);
  const auto right_ids = tokenizer_.encode(right, false);
  parts.insert(parts.end(), right_ids.begin(), right_ids.end());
  return parts == whole;
}

void JoinedTextEncoder::emit(size_t cut) {
  const auto ids = tokenizer_.encode(std::string_view(pending_).substr(0, cut), false);
  ready_.insert(ready_.end(), ids.begin(), ids.end());
  pending_.erase(0, cut);
  std::vector<size_t> kept;
  for (size_t start : row_starts_) {
    if (start >= cut) kept.push_back(start - cut);
  }
  row_starts_ = std::move(kept);
  next_try_bytes_ = 0;
}

void JoinedTextEncoder::cut_if_due() {
  // After failed tries, try again only when another chunk has arrived.
  if (pending_.size() < std::max(options_.chunk_bytes, next_try_bytes_)) return;
  // Candidates: for each row boundary, latest first, the start of the whitespace run that
  // holds the separator (a word never ends inside such a run's start).
  std::vector<size_t> candidates;
  for (size_t k = row_starts_.size(); k-- > 1 && candidates.size() < kMaxCutTries;) {
    size_t cut = row_starts_[k] - kRowSeparator.size();
    while (cut > 0 && is_ascii_space(pending_[cut - 1])) --cut;
    if (cut == 0) continue;
    if (!candidates.empty() && candidates.back() == cut) continue;
    candidates.push_back(cut);
  }
  for (size_t cut : candidates) {
    if (verified(cut)) {
      ++cuts_;
      emit(cut);
      return;
    }
  }
  next_try_bytes_ = pending_.size() + options_.chunk_bytes;
  if (pending_.size() < options_.max_pending_bytes) return;
  // No safe point in a very long stretch: cut at the last row boundary anyway.
  const size_t cut = row_starts_.size() > 1 ? row_starts_.back() : pending_.size();
  ++cuts_;
  ++unverified_cuts_;
  emit(cut);
}

void JoinedTextEncoder::finish() {
  if (finished_) return;
  finished_ = true;
  if (!pending_.empty()) emit(pending_.size());
  ready_.insert(ready_.end(), suffix_.begin(), suffix_.end());
}

void JoinedTextEncoder::take(std::vector<int64_t>& out) {
  out.insert(out.end(), ready_.begin(), ready_.end());
  ready_.clear();
}

struct TokenWindows::State {
  dataset_detail::RowReader rows;
  JoinedTextEncoder encoder;
  int64_t seq_len;
  std::vector<int64_t> ids;
  size_t used = 0;  // ids before this were returned
  int64_t tokens_read = 0;
  bool done = false;
  std::string row;
};

TokenWindows::TokenWindows(std::unique_ptr<State> state) : state_(std::move(state)) {}
TokenWindows::TokenWindows(TokenWindows&&) noexcept = default;
TokenWindows& TokenWindows::operator=(TokenWindows&&) noexcept = default;
TokenWindows::~TokenWindows() = default;

TokenWindows TokenWindows::open(const std::filesystem::path& path, const Tokenizer& tokenizer,
                                int64_t seq_len, const DatasetOptions& options) {
  STUNT_CHECK(seq_len > 0, "window length (seq_len) must be > 0, got ", seq_len);
  return TokenWindows(std::unique_ptr<State>(
      new State{dataset_detail::RowReader(path, options.format),
                JoinedTextEncoder(
                    tokenizer, JoinedTextOptions{.add_special_tokens = options.add_special_tokens,
                                                 .chunk_bytes = options.chunk_bytes}),
                seq_len,
                {},
                0,
                0,
                false,
                {}}));
}

std::optional<std::vector<int64_t>> TokenWindows::next() {
  State& s = *state_;
  const auto n = static_cast<size_t>(s.seq_len);
  while (s.ids.size() - s.used < n && !s.done) {
    if (s.used > 0) {
      s.ids.erase(s.ids.begin(), s.ids.begin() + static_cast<ptrdiff_t>(s.used));
      s.used = 0;
    }
    if (s.rows.next(s.row)) {
      s.encoder.add_row(s.row);
    } else {
      s.encoder.finish();
      s.done = true;
    }
    const size_t before = s.ids.size();
    s.encoder.take(s.ids);
    s.tokens_read += static_cast<int64_t>(s.ids.size() - before);
  }
  if (s.ids.size() - s.used < n) return std::nullopt;
  std::vector<int64_t> window(s.ids.begin() + static_cast<ptrdiff_t>(s.used),
                              s.ids.begin() + static_cast<ptrdiff_t>(s.used + n));
  s.used += n;
  return window;
}

uint64_t TokenWindows::bytes_read() const { return state_->rows.lines().bytes_read(); }
uint64_t TokenWindows::size_bytes() const { return state_->rows.lines().size_bytes(); }
int64_t TokenWindows::tokens_read() const { return state_->tokens_read; }
int64_t TokenWindows::unverified_cuts() const { return state_->encoder.unverified_cuts(); }

std::vector<std::vector<int64_t>> token_windows(const std::filesystem::path& path,
                                                const Tokenizer& tokenizer, int64_t seq_len,
                                                const DatasetOptions& options) {
  auto windows = TokenWindows::open(path, tokenizer, seq_len, options);
  std::vector<std::vector<int64_t>> out;
  while (auto window = windows.next()) out.push_back(std::move(*window));
  return out;
}

}  // namespace stunt::io
