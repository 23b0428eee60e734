// Used when the build has no CUDA compiler: the same API, reporting that nothing is there.
#include "stunt/kernels/cuda_device.h"

namespace stunt::kernels {

bool cuda_kernels_compiled() { return false; }
int cuda_device_count() { return 0; }
std::string cuda_probe() { return "Stunt was built without CUDA kernels"; }

}  // namespace stunt::kernels
