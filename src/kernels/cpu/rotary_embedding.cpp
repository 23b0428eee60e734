#include "stunt/kernels/rotary_embedding.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/core/grad_mode.h>

#include "cpu_features.h"
#include "stunt/core/error.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif

namespace stunt::kernels {
namespace {

// The products are rounded before the sum, as ATen's three elementwise operations round them.
// The scalar path is built for baseline x86-64, which has no FMA to contract them into; the
// vector path is built for AVX2 without FMA for the same reason.

/// One head's row: out = x·cos + rotate_half(x)·sin. `stride` is the distance from an element
/// of the first half to its partner in the second (dim / 2); `count` pairs are rotated.
void rotate_pairs_scalar(const float* __restrict x, const float* __restrict cos,
                         const float* __restrict sin, float* __restrict out, int64_t count,
                         int64_t stride) {
  for (int64_t i = 0; i < count; ++i) {
    out[i] = x[i] * cos[i] + (-x[i + stride]) * sin[i];
    out[i + stride] = x[i + stride] * cos[i + stride] + x[i] * sin[i + stride];
  }
}

void rotate_row_scalar(const float* x, const float* cos, const float* sin, float* out,
                       int64_t half) {
  rotate_pairs_scalar(x, cos, sin, out, half, half);
}

#if defined(__x86_64__) && defined(__GNUC__)

__attribute__((target("avx2"))) void rotate_row_avx2(const float* __restrict x,
                                                     const float* __restrict cos,
                                                     const float* __restrict sin,
                                                     float* __restrict out, int64_t half) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  int64_t i = 0;
  for (; i + 8 <= half; i += 8) {
    const __m256 first = _mm256_loadu_ps(x + i);
    const __m256 second = _mm256_loadu_ps(x + i + half);
    const __m256 lo =
        _mm256_add_ps(_mm256_mul_ps(first, _mm256_loadu_ps(cos + i)),
                      _mm256_mul_ps(_mm256_xor_ps(second, sign), _mm256_loadu_ps(sin + i)));
    const __m256 hi = _mm256_add_ps(_mm256_mul_ps(second, _mm256_loadu_ps(cos + i + half)),
                                    _mm256_mul_ps(first, _mm256_loadu_ps(sin + i + half)));
    _mm256_storeu_ps(out + i, lo);
    _mm256_storeu_ps(out + i + half, hi);
  }
  rotate_pairs_scalar(x + i, cos + i, sin + i, out + i, half - i, half);
}

#endif

using RowFunction = void (*)(const float*, const float*, const float*, float*, int64_t);

RowFunction row_function() {
#if defined(__x86_64__) && defined(__GNUC__)
  if (detail::cpu_has_avx2()) return rotate_row_avx2;
#endif
  return rotate_row_scalar;
}

}  // namespace

bool rotary_embedding_supported(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  if (!x.defined() || !cos.defined() || !sin.defined()) return false;
  for (const at::Tensor* t : {&x, &cos, &sin}) {
    if (t->scalar_type() != at::kFloat || !t->is_cpu() || t->size(-1) == 0 || t->stride(-1) != 1) {
      return false;
    }
  }
  if (at::GradMode::is_enabled() &&
      (x.requires_grad() || cos.requires_grad() || sin.requires_grad())) {
    return false;
  }
  if (x.dim() != 4 || cos.dim() != 3 || sin.dim() != 3 || x.size(3) % 2 != 0) return false;
  if (!x.is_non_overlapping_and_dense()) return false;
  return cos.sizes() == sin.sizes() && (cos.size(0) == 1 || cos.size(0) == x.size(0)) &&
         cos.size(1) == x.size(2) && cos.size(2) == x.size(3);
}

at::Tensor rotary_embedding(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  STUNT_CHECK(rotary_embedding_supported(x, cos, sin), "rotary_embedding: unsupported inputs x ",
              x.sizes(), ", cos ", cos.sizes(), ", sin ", sin.sizes(),
              "; check rotary_embedding_supported() first");
  // Dense and non-overlapping: empty_like keeps x's strides (a [batch, length, heads, dim]
  // projection output viewed as heads stays in that order).
  at::Tensor out = at::empty_like(x);
  const int64_t batch = x.size(0), heads = x.size(1), length = x.size(2), dim = x.size(3);
  const int64_t half = dim / 2;
  const float* xs = x.const_data_ptr<float>();
  const float* cs = cos.const_data_ptr<float>();
  const float* ss = sin.const_data_ptr<float>();
  float* os = out.data_ptr<float>();
  const int64_t cos_batch_stride = cos.size(0) == 1 ? 0 : cos.stride(0);
  const int64_t sin_batch_stride = sin.size(0) == 1 ? 0 : sin.stride(0);
  const int64_t x_strides[3] = {x.stride(0), x.stride(1), x.stride(2)};
  const int64_t out_strides[3] = {out.stride(0), out.stride(1), out.stride(2)};
  const int64_t cos_row = cos.stride(1), sin_row = sin.stride(1);
  const RowFunction rotate = row_function();
  // One task per (sequence, position): every head of it reads the same cos and sin row.
  at::parallel_for(0, batch * length, 64, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const int64_t b = t / length, l = t % length;
      const float* c = cs + b * cos_batch_stride + l * cos_row;
      const float* s = ss + b * sin_batch_stride + l * sin_row;
      for (int64_t h = 0; h < heads; ++h) {
        const int64_t xo = b * x_strides[0] + h * x_strides[1] + l * x_strides[2];
        const int64_t oo = b * out_strides[0] + h * out_strides[1] + l * out_strides[2];
        rotate(xs + xo, c, s, os + oo, half);
      }
    }
  });
  return out;
}

}  // namespace stunt::kernels
