#include "stunt/kernels/rms_norm.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <cmath>

#include "cpu_features.h"
#include "stunt/core/error.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif

namespace stunt::kernels {
namespace {

float square_sum_scalar(const float* x, int64_t width) {
  float sum = 0.0f;
  for (int64_t i = 0; i < width; ++i) sum += x[i] * x[i];
  return sum;
}

/// out = (x · inverse_rms) · weight, rounded after each product as ATen rounds them.
void scale_row_scalar(const float* __restrict x, const float* __restrict weight, float inverse_rms,
                      float* __restrict out, int64_t width) {
  for (int64_t i = 0; i < width; ++i) out[i] = (x[i] * inverse_rms) * weight[i];
}

#if defined(__x86_64__) && defined(__GNUC__)

__attribute__((target("avx2,fma"))) float square_sum_avx2(const float* x, int64_t width) {
  // Four accumulators: the adds of one do not wait on another's.
  __m256 sums[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                    _mm256_setzero_ps()};
  int64_t i = 0;
  for (; i + 32 <= width; i += 32) {
    for (int a = 0; a < 4; ++a) {
      const __m256 v = _mm256_loadu_ps(x + i + 8 * a);
      sums[a] = _mm256_fmadd_ps(v, v, sums[a]);
    }
  }
  for (; i + 8 <= width; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    sums[0] = _mm256_fmadd_ps(v, v, sums[0]);
  }
  const __m256 total =
      _mm256_add_ps(_mm256_add_ps(sums[0], sums[1]), _mm256_add_ps(sums[2], sums[3]));
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(total), _mm256_extractf128_ps(total, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
  return _mm_cvtss_f32(s) + square_sum_scalar(x + i, width - i);
}

__attribute__((target("avx2"))) void scale_row_avx2(const float* __restrict x,
                                                    const float* __restrict weight,
                                                    float inverse_rms, float* __restrict out,
                                                    int64_t width) {
  const __m256 scale = _mm256_set1_ps(inverse_rms);
  int64_t i = 0;
  for (; i + 8 <= width; i += 8) {
    const __m256 normed = _mm256_mul_ps(_mm256_loadu_ps(x + i), scale);
    _mm256_storeu_ps(out + i, _mm256_mul_ps(normed, _mm256_loadu_ps(weight + i)));
  }
  scale_row_scalar(x + i, weight + i, inverse_rms, out + i, width - i);
}

#endif

float square_sum(const float* x, int64_t width) {
#if defined(__x86_64__) && defined(__GNUC__)
  if (detail::cpu_has_avx2_fma()) return square_sum_avx2(x, width);
#endif
  return square_sum_scalar(x, width);
}

void scale_row(const float* x, const float* weight, float inverse_rms, float* out, int64_t width) {
#if defined(__x86_64__) && defined(__GNUC__)
  if (detail::cpu_has_avx2()) return scale_row_avx2(x, weight, inverse_rms, out, width);
#endif
  scale_row_scalar(x, weight, inverse_rms, out, width);
}

/// One row of the backward: grad_x, and grad · x · r added into weight_grad. Plain loops, cloned
/// for AVX2 by the compiler.
__attribute__((target_clones("avx2", "default"))) void rms_norm_backward_row(
    const float* __restrict dy, const float* __restrict x, const float* __restrict w,
    float inverse_rms, float* __restrict dx, float* __restrict weight_grad, int64_t width) {
  float dot = 0.0f;
  for (int64_t i = 0; i < width; ++i) dot += dy[i] * w[i] * x[i];
  const float correction =
      inverse_rms * inverse_rms * inverse_rms * dot / static_cast<float>(width);
  for (int64_t i = 0; i < width; ++i) {
    dx[i] = inverse_rms * w[i] * dy[i] - x[i] * correction;
    weight_grad[i] += dy[i] * x[i] * inverse_rms;
  }
}

}  // namespace

bool rms_norm_supported(const at::Tensor& x, const at::Tensor& weight) {
  if (!x.defined() || !weight.defined()) return false;
  for (const at::Tensor* t : {&x, &weight}) {
    if (t->scalar_type() != at::kFloat || !t->is_cpu() || !t->is_contiguous()) return false;
  }
  if (at::GradMode::is_enabled() && (x.requires_grad() || weight.requires_grad())) return false;
  return x.dim() >= 1 && weight.dim() == 1 && x.size(-1) == weight.size(0) && x.size(-1) > 0;
}

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  STUNT_CHECK(rms_norm_supported(x, weight), "rms_norm: unsupported inputs x ", x.sizes(),
              ", weight ", weight.sizes(), "; check rms_norm_supported() first");
  at::Tensor out = at::empty_like(x, at::MemoryFormat::Contiguous);
  const int64_t width = x.size(-1);
  const int64_t rows = width == 0 ? 0 : x.numel() / width;
  const float* xs = x.const_data_ptr<float>();
  const float* ws = weight.const_data_ptr<float>();
  float* os = out.data_ptr<float>();
  const float epsilon = static_cast<float>(eps);
  const float count = static_cast<float>(width);
  at::parallel_for(0, rows, 16, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const float* row = xs + r * width;
      // ATen's float32 steps: mean, plus eps, reciprocal square root.
      const float mean = square_sum(row, width) / count;
      const float inverse_rms = 1.0f / std::sqrt(mean + epsilon);
      scale_row(row, ws, inverse_rms, os + r * width, width);
    }
  });
  return out;
}

std::pair<at::Tensor, at::Tensor> rms_norm_backward(const at::Tensor& grad, const at::Tensor& x,
                                                    const at::Tensor& weight, double eps) {
  STUNT_CHECK(rms_norm_supported(x, weight) && rms_norm_supported(grad, weight) &&
                  grad.sizes() == x.sizes(),
              "rms_norm_backward: unsupported inputs grad ", grad.sizes(), ", x ", x.sizes(),
              ", weight ", weight.sizes(), "; check rms_norm_supported() first");
  const int64_t width = x.size(-1);
  const int64_t rows = x.numel() / width;
  at::Tensor grad_x = at::empty_like(x, at::MemoryFormat::Contiguous);
  // One partial weight gradient per block of rows, summed at the end: the threads never share
  // a row of it, and the sum does not depend on which thread ran which block.
  const int64_t block = 64;
  const int64_t blocks = (rows + block - 1) / block;
  at::Tensor partial = at::zeros({std::max<int64_t>(blocks, 1), width}, x.options());
  const float* dys = grad.const_data_ptr<float>();
  const float* xs = x.const_data_ptr<float>();
  const float* ws = weight.const_data_ptr<float>();
  float* dxs = grad_x.data_ptr<float>();
  float* partials = partial.data_ptr<float>();
  const float epsilon = static_cast<float>(eps);
  const float count = static_cast<float>(width);
  at::parallel_for(0, blocks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) {
      for (int64_t r = b * block; r < std::min(rows, (b + 1) * block); ++r) {
        const float* row = xs + r * width;
        const float inverse_rms = 1.0f / std::sqrt(square_sum(row, width) / count + epsilon);
        rms_norm_backward_row(dys + r * width, row, ws, inverse_rms, dxs + r * width,
                              partials + b * width, width);
      }
    }
  });
  return {grad_x, partial.sum(0)};
}

}  // namespace stunt::kernels
