#pragma once
/// Small string helpers shared by the layers.

#include <string>
#include <vector>

namespace stunt {

/// ASCII lower case (recipe keywords and dtype names are ASCII).
std::string to_lower(std::string text);

/// The items separated by `separator`.
std::string join(const std::vector<std::string>& items, const std::string& separator);

}  // namespace stunt
