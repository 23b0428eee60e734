#include "stunt/core/strings.h"

#include <algorithm>
#include <cctype>

namespace stunt {

std::string to_lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return text;
}

}  // namespace stunt
