// Compiled for sm_80 (A100), sm_86 (A10) and sm_90 (H100/H200) without a GPU present.
#include <cuda_runtime.h>

#include <string>

#include "stunt/kernels/cuda_device.h"

namespace stunt::kernels {
namespace {

__global__ void probe_kernel(int* out, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) out[i] = i * 3 + 1;
}

}  // namespace

bool cuda_kernels_compiled() { return true; }

int cuda_device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no driver" error
    return 0;
  }
  return count;
}

std::string cuda_probe() {
  if (cuda_device_count() == 0) return "no CUDA device";
  constexpr int kN = 1000;
  int* device = nullptr;
  int host[kN];
  cudaError_t status = cudaMalloc(&device, kN * sizeof(int));
  if (status != cudaSuccess) return cudaGetErrorString(status);
  probe_kernel<<<(kN + 255) / 256, 256>>>(device, kN);
  status = cudaGetLastError();
  if (status == cudaSuccess)
    status = cudaMemcpy(host, device, sizeof(host), cudaMemcpyDeviceToHost);
  cudaFree(device);
  if (status != cudaSuccess) return cudaGetErrorString(status);
  for (int i = 0; i < kN; ++i) {
    if (host[i] != i * 3 + 1) return "probe kernel returned a wrong value";
  }
  return "";
}

}  // namespace stunt::kernels
