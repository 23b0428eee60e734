#pragma once
// Hand-written matchers for the pre-tokenizer regexes that real tokenizers use (no std::regex:
// slow, and recursive on hostile input). A pattern string is recognized exactly or refused.

#include <optional>
#include <string>
#include <string_view>

namespace stunt::io::tokenizer_detail {

enum class SplitPattern {
  Gpt2,    // GPT-2, RoBERTa, SmolLM (ByteLevel's built-in regex)
  Llama3,  // Llama 3: case-insensitive contractions, \p{N}{1,3}
  Qwen2,   // Qwen2: as Llama 3 with single digits
};

/// The GPT-2 pattern, as ByteLevel uses it.
extern const char* const kGpt2Pattern;
/// The pattern a tokenizer.json regex string names, or nothing when it is not one we know.
std::optional<SplitPattern> recognize_split_pattern(std::string_view regex);
/// The supported patterns, for error messages.
std::string supported_split_patterns();
/// Byte length of the match that starts at text[pos] (pos < text.size()). These patterns match
/// every character, so consecutive matches cover the text.
size_t match_split_pattern(SplitPattern pattern, std::string_view text, size_t pos);

}  // namespace stunt::io::tokenizer_detail
