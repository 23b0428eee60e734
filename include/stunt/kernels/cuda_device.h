#pragma once
/// What the CUDA side of Stunt can see. Safe to call on machines without a GPU or without
/// CUDA support compiled in.

#include <string>

namespace stunt::kernels {

/// True when Stunt's own CUDA kernels were compiled into this build.
bool cuda_kernels_compiled();
/// Number of CUDA devices visible to Stunt's kernels (0 without a GPU or driver).
int cuda_device_count();
/// Launches a probe kernel on device 0 and checks its result; returns "" on success or the
/// reason it could not run ("no CUDA device", the CUDA error text).
std::string cuda_probe();

}  // namespace stunt::kernels
