#include "detail/generation_filters.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <set>

namespace stunt::pseudolabel::detail {

/// The shortest prefix of `tokens` whose text contains a stop string, and the text before it.
void apply_stop_strings(const io::Tokenizer& tokenizer, const std::vector<std::string>& stops,
                        model::ScoredGeneration& g, std::string& text) {
  text = tokenizer.decode(g.tokens);
  if (stops.empty()) return;
  size_t cut = std::string::npos;
  for (const std::string& s : stops) cut = std::min(cut, text.find(s));
  if (cut == std::string::npos) return;
  text.resize(cut);
  for (size_t k = 1; k <= g.tokens.size(); ++k) {
    const std::string prefix =
        tokenizer.decode(std::vector<int64_t>(g.tokens.begin(), g.tokens.begin() + k));
    bool hit = false;
    for (const std::string& s : stops) hit = hit || prefix.find(s) != std::string::npos;
    if (hit) {
      g.tokens.resize(k);
      g.log_probs.resize(k);
      if (!g.entropies.empty()) g.entropies.resize(k);
      return;
    }
  }
}

namespace {

/// rouge_score's tokenization: lowercase, runs of ASCII letters and digits.
std::vector<std::string> rouge_tokens(const std::string& text) {
  std::vector<std::string> out;
  std::string word;
  for (const char raw : text) {
    const auto c = static_cast<unsigned char>(raw);
    if (std::isalnum(c)) {
      word.push_back(static_cast<char>(std::tolower(c)));
    } else if (!word.empty()) {
      out.push_back(std::move(word));
      word.clear();
    }
  }
  if (!word.empty()) out.push_back(std::move(word));
  return out;
}

}  // namespace

/// ROUGE-L F1 (the longest common subsequence of words) of a candidate against a reference.
double rouge_l(const std::string& candidate, const std::string& reference) {
  const std::vector<std::string> a = rouge_tokens(candidate);
  const std::vector<std::string> b = rouge_tokens(reference);
  if (a.empty() || b.empty()) return 0.0;
  std::vector<int64_t> previous(b.size() + 1, 0), current(b.size() + 1, 0);
  for (size_t i = 1; i <= a.size(); ++i) {
    for (size_t j = 1; j <= b.size(); ++j) {
      current[j] =
          a[i - 1] == b[j - 1] ? previous[j - 1] + 1 : std::max(previous[j], current[j - 1]);
    }
    std::swap(previous, current);
  }
  const double lcs = static_cast<double>(previous[b.size()]);
  if (lcs == 0) return 0.0;
  const double precision = lcs / static_cast<double>(a.size());
  const double recall = lcs / static_cast<double>(b.size());
  return 2 * precision * recall / (precision + recall);
}

/// Word error rate: the word-level edit distance (substitutions, insertions, deletions) from the
/// reference to the candidate over the reference's word count, on the same lowercase
/// alphanumeric words as ROUGE-L (distil-whisper filters on a normalised WER likewise).
double word_error_rate(const std::string& candidate, const std::string& reference) {
  const std::vector<std::string> hyp = rouge_tokens(candidate);
  const std::vector<std::string> ref = rouge_tokens(reference);
  if (ref.empty()) return hyp.empty() ? 0.0 : 1.0;
  std::vector<int64_t> previous(hyp.size() + 1), current(hyp.size() + 1);
  for (size_t j = 0; j <= hyp.size(); ++j) previous[j] = static_cast<int64_t>(j);
  for (size_t i = 1; i <= ref.size(); ++i) {
    current[0] = static_cast<int64_t>(i);
    for (size_t j = 1; j <= hyp.size(); ++j) {
      const int64_t substitute = previous[j - 1] + (ref[i - 1] == hyp[j - 1] ? 0 : 1);
      current[j] = std::min({substitute, previous[j] + 1, current[j - 1] + 1});
    }
    std::swap(previous, current);
  }
  return static_cast<double>(previous[hyp.size()]) / static_cast<double>(ref.size());
}

/// The share of a token sequence's 3-grams that occurred earlier in it.
double repeated_trigram_share(const std::vector<int64_t>& tokens) {
  if (tokens.size() < 3) return 0.0;
  std::set<std::array<int64_t, 3>> seen;
  int64_t repeats = 0;
  for (size_t i = 0; i + 3 <= tokens.size(); ++i) {
    if (!seen.insert({tokens[i], tokens[i + 1], tokens[i + 2]}).second) ++repeats;
  }
  return static_cast<double>(repeats) / static_cast<double>(tokens.size() - 2);
}

}  // namespace stunt::pseudolabel::detail
