#include "stunt/kernels/cuda_device.h"

#include <gtest/gtest.h>

namespace stunt::kernels {
namespace {

// Without a GPU the probe must report that plainly (never crash); with one it must run the
// kernel and check its result.
TEST(CudaDevice, ProbeRunsOnAGpuAndReportsClearlyWithout) {
  const std::string result = cuda_probe();
  if (!cuda_kernels_compiled()) {
    EXPECT_EQ(result, "Stunt was built without CUDA kernels");
  } else if (cuda_device_count() == 0) {
    EXPECT_EQ(result, "no CUDA device");
  } else {
    EXPECT_EQ(result, "");
  }
}

}  // namespace
}  // namespace stunt::kernels
