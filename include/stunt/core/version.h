#pragma once
/// Build facts: Stunt's version and the optional components compiled in.

#include <string>

namespace stunt {

/// "0.1.0".
const char* version();
/// One line per component: LibTorch version, CUDA kernels and their architectures, oneDNN.
std::string build_info();

}  // namespace stunt
