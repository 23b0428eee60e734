#pragma once
/// Small string helpers shared by the layers.

#include <string>

namespace stunt {

/// ASCII lower case (recipe keywords and dtype names are ASCII).
std::string to_lower(std::string text);

}  // namespace stunt
