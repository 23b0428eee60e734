#pragma once
// What the generate kind measures of a generation to select it: stop strings, ROUGE-L and word
// error rate against a reference, repetition.

#include <cstdint>
#include <string>
#include <vector>

#include "stunt/io/tokenizer.h"
#include "stunt/model/generate.h"

namespace stunt::pseudolabel::detail {

/// `text` = the generation's text, ended before the first stop string; tokens and
/// log-probabilities cut to the shortest prefix whose text contains it.
void apply_stop_strings(const io::Tokenizer& tokenizer, const std::vector<std::string>& stops,
                        model::ScoredGeneration& g, std::string& text);

/// ROUGE-L F1 (longest common subsequence of rouge_score's lowercase alphanumeric tokens).
double rouge_l(const std::string& candidate, const std::string& reference);

/// Word error rate of a candidate against a reference (edit distance over the reference's words;
/// the words as ROUGE-L's). A reference without words: 0 for an empty candidate, else 1.
double word_error_rate(const std::string& candidate, const std::string& reference);

/// The share of a token sequence's 3-grams that occurred earlier in it.
double repeated_trigram_share(const std::vector<int64_t>& tokens);

}  // namespace stunt::pseudolabel::detail
