#pragma once
/// Recipe name patterns, as compressed-tensors and llm-compressor read them.

#include <string>

namespace stunt {

/// Whether `name` matches `pattern`: "re:<regex>" matches from the start of the name (Python's
/// re.match), anything else must equal the name. Throws ValueError for a malformed regex.
bool name_matches(const std::string& pattern, const std::string& name);

}  // namespace stunt
