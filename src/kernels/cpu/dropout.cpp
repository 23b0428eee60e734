#include "stunt/kernels/dropout.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>

#include <cmath>
#include <mutex>

#include "stunt/core/error.h"

namespace stunt::kernels {
namespace {

/// SplitMix64's output function on a Weyl sequence: 64 well-mixed bits from (seed, counter).
inline uint64_t mix(uint64_t seed, uint64_t counter) {
  uint64_t z = seed + (counter + 1) * 0x9E3779B97F4A7C15ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

}  // namespace

at::Tensor dropout_with_seed(const at::Tensor& x, double p, uint64_t seed) {
  STUNT_CHECK(x.scalar_type() == at::kFloat && x.is_cpu(),
              "dropout_with_seed: expects a float32 CPU tensor, got ", x.scalar_type(), " on ",
              x.device());
  STUNT_CHECK(p >= 0.0 && std::isfinite(p), "dropout_with_seed: rate ", p, " is not in [0, 1]");
  if (p >= 1.0) return at::zeros_like(x, at::MemoryFormat::Contiguous);
  const at::Tensor in = x.contiguous();
  at::Tensor out = at::empty_like(in, at::MemoryFormat::Contiguous);
  if (p == 0.0) return out.copy_(in);
  // Element i is dropped when its 32 random bits fall below p · 2^32; each 64-bit draw covers
  // two elements (the low half for the even one).
  const auto threshold = static_cast<uint64_t>(std::llround(p * 4294967296.0));
  const auto scale = static_cast<float>(1.0 / (1.0 - p));
  const float* src = in.const_data_ptr<float>();
  float* dst = out.data_ptr<float>();
  const int64_t n = in.numel();
  const int64_t pairs = (n + 1) / 2;
  at::parallel_for(0, pairs, 8192, [&](int64_t begin, int64_t end) {
    for (int64_t j = begin; j < end; ++j) {
      const uint64_t bits = mix(seed, static_cast<uint64_t>(j));
      const int64_t i = 2 * j;
      dst[i] = (bits & 0xFFFFFFFFULL) >= threshold ? src[i] * scale : 0.0f;
      if (i + 1 < n) dst[i + 1] = (bits >> 32) >= threshold ? src[i + 1] * scale : 0.0f;
    }
  });
  return out;
}

uint64_t draw_dropout_seed() {
  at::Generator generator = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(generator.mutex());
  return generator.get<at::CPUGeneratorImpl>()->random64();
}

}  // namespace stunt::kernels
