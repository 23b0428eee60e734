#include "stunt/core/name_pattern.h"

#include <map>
#include <mutex>
#include <regex>

#include "stunt/core/error.h"

namespace stunt {

bool name_matches(const std::string& pattern, const std::string& name) {
  if (pattern.rfind("re:", 0) != 0) return pattern == name;
  // Recipes reuse a handful of patterns over thousands of names: compile each once.
  static std::mutex mutex;
  static std::map<std::string, std::regex> compiled;
  std::lock_guard<std::mutex> lock(mutex);
  auto it = compiled.find(pattern);
  if (it == compiled.end()) {
    try {
      it = compiled.emplace(pattern, std::regex(pattern.substr(3), std::regex::ECMAScript)).first;
    } catch (const std::regex_error& e) {
      throw ValueError(str("\"", pattern, "\" is not a valid regular expression (", e.what(), ")"));
    }
  }
  return std::regex_search(name, it->second, std::regex_constants::match_continuous);
}

}  // namespace stunt
