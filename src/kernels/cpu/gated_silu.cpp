#include "stunt/kernels/gated_silu.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/core/grad_mode.h>

#include <cmath>

#include "avx2_exp.h"
#include "cpu_features.h"
#include "stunt/core/error.h"

namespace stunt::kernels {
namespace {

/// silu(g) = g / (1 + e^-g), from e = e^-|g| so that the exponential never overflows:
/// g / (1 + e) for g >= 0 and g·e / (1 + e) below.
void gated_silu_scalar(const float* __restrict gate, const float* __restrict up,
                       float* __restrict out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    const float e = std::exp(-std::fabs(g));
    out[i] = (g >= 0.0f ? g : g * e) / (1.0f + e) * up[i];
  }
}

#if defined(__x86_64__) && defined(__GNUC__)

__attribute__((target("avx2,fma"))) void gated_silu_avx2(const float* __restrict gate,
                                                         const float* __restrict up,
                                                         float* __restrict out, int64_t n) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  const __m256 one = _mm256_set1_ps(1.0f);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 g = _mm256_loadu_ps(gate + i);
    // -|g|: the sign bit set. A NaN stays NaN through the products below.
    const __m256 e = detail::exp_nonpositive(_mm256_or_ps(g, sign));
    const __m256 negative = _mm256_cmp_ps(g, _mm256_setzero_ps(), _CMP_LT_OQ);
    const __m256 numerator = _mm256_blendv_ps(g, _mm256_mul_ps(g, e), negative);
    const __m256 silu = _mm256_div_ps(numerator, _mm256_add_ps(one, e));
    _mm256_storeu_ps(out + i, _mm256_mul_ps(silu, _mm256_loadu_ps(up + i)));
  }
  gated_silu_scalar(gate + i, up + i, out + i, n - i);
}

#endif

using Body = void (*)(const float*, const float*, float*, int64_t);

Body body_for_this_cpu() {
#if defined(__x86_64__) && defined(__GNUC__)
  if (detail::cpu_has_avx2_fma()) return gated_silu_avx2;
#endif
  return gated_silu_scalar;
}

}  // namespace

bool gated_silu_supported(const at::Tensor& gate, const at::Tensor& up) {
  if (!gate.defined() || !up.defined()) return false;
  for (const at::Tensor* t : {&gate, &up}) {
    if (t->scalar_type() != at::kFloat || !t->is_cpu() || !t->is_contiguous()) return false;
  }
  if (at::GradMode::is_enabled() && (gate.requires_grad() || up.requires_grad())) return false;
  return gate.sizes() == up.sizes();
}

at::Tensor gated_silu(const at::Tensor& gate, const at::Tensor& up) {
  STUNT_CHECK(gated_silu_supported(gate, up), "gated_silu: unsupported inputs gate ", gate.sizes(),
              ", up ", up.sizes(), "; check gated_silu_supported() first");
  at::Tensor out = at::empty_like(gate, at::MemoryFormat::Contiguous);
  const float* gs = gate.const_data_ptr<float>();
  const float* us = up.const_data_ptr<float>();
  float* os = out.data_ptr<float>();
  const Body body = body_for_this_cpu();
  at::parallel_for(0, gate.numel(), 16384, [&](int64_t begin, int64_t end) {
    body(gs + begin, us + begin, os + begin, end - begin);
  });
  return out;
}

}  // namespace stunt::kernels
