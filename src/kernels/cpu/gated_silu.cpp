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

void gated_silu_backward_scalar(const float* __restrict grad, const float* __restrict gate,
                                const float* __restrict up, float* __restrict grad_gate,
                                float* __restrict grad_up, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    const float e = std::exp(-std::fabs(g));
    const float s = (g >= 0.0f ? 1.0f : e) / (1.0f + e);
    grad_up[i] = grad[i] * (g * s);
    grad_gate[i] = grad[i] * up[i] * (s * (1.0f + g * (1.0f - s)));
  }
}

#if defined(__x86_64__) && defined(__GNUC__)

__attribute__((target("avx2,fma"))) void gated_silu_backward_avx2(
    const float* __restrict grad, const float* __restrict gate, const float* __restrict up,
    float* __restrict grad_gate, float* __restrict grad_up, int64_t n) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  const __m256 one = _mm256_set1_ps(1.0f);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 g = _mm256_loadu_ps(gate + i);
    const __m256 dy = _mm256_loadu_ps(grad + i);
    const __m256 e = detail::exp_nonpositive(_mm256_or_ps(g, sign));
    const __m256 negative = _mm256_cmp_ps(g, _mm256_setzero_ps(), _CMP_LT_OQ);
    const __m256 s = _mm256_div_ps(_mm256_blendv_ps(one, e, negative), _mm256_add_ps(one, e));
    _mm256_storeu_ps(grad_up + i, _mm256_mul_ps(dy, _mm256_mul_ps(g, s)));
    // s · (1 + g · (1 - s))
    const __m256 slope = _mm256_mul_ps(s, _mm256_fmadd_ps(g, _mm256_sub_ps(one, s), one));
    _mm256_storeu_ps(grad_gate + i,
                     _mm256_mul_ps(_mm256_mul_ps(dy, _mm256_loadu_ps(up + i)), slope));
  }
  gated_silu_backward_scalar(grad + i, gate + i, up + i, grad_gate + i, grad_up + i, n - i);
}

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

using BackwardBody = void (*)(const float*, const float*, const float*, float*, float*, int64_t);

BackwardBody backward_body_for_this_cpu() {
#if defined(__x86_64__) && defined(__GNUC__)
  if (detail::cpu_has_avx2_fma()) return gated_silu_backward_avx2;
#endif
  return gated_silu_backward_scalar;
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

std::pair<at::Tensor, at::Tensor> gated_silu_backward(const at::Tensor& grad,
                                                      const at::Tensor& gate,
                                                      const at::Tensor& up) {
  STUNT_CHECK(gated_silu_supported(gate, up) && gated_silu_supported(grad, up),
              "gated_silu_backward: unsupported inputs grad ", grad.sizes(), ", gate ",
              gate.sizes(), ", up ", up.sizes(), "; check gated_silu_supported() first");
  at::Tensor grad_gate = at::empty_like(gate, at::MemoryFormat::Contiguous);
  at::Tensor grad_up = at::empty_like(up, at::MemoryFormat::Contiguous);
  const float* dys = grad.const_data_ptr<float>();
  const float* gs = gate.const_data_ptr<float>();
  const float* us = up.const_data_ptr<float>();
  float* dgs = grad_gate.data_ptr<float>();
  float* dus = grad_up.data_ptr<float>();
  const BackwardBody body = backward_body_for_this_cpu();
  at::parallel_for(0, gate.numel(), 16384, [&](int64_t begin, int64_t end) {
    body(dys + begin, gs + begin, us + begin, dgs + begin, dus + begin, end - begin);
  });
  return {grad_gate, grad_up};
}

}  // namespace stunt::kernels
