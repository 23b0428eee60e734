#include "stunt/core/version.h"

#include "stunt/core/error.h"

namespace stunt {

const char* version() { return STUNT_VERSION; }

std::string build_info() {
  return str("stunt ", STUNT_VERSION, "\nLibTorch ", STUNT_TORCH_VERSION,
             "\nCUDA kernels: ", STUNT_CUDA_INFO, "\noneDNN (separate): ", STUNT_ONEDNN_INFO);
}

}  // namespace stunt
