#include "stunt/kernels/softmax_cross_entropy.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>

#include "avx2_exp.h"
#include "cpu_features.h"
#include "row_max.h"
#include "stunt/core/error.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif

namespace stunt::kernels {
namespace {

/// Σ e^(x - shift); writes the terms to `terms` when it is not null.
double exp_sum_scalar(const float* x, int64_t n, float shift, float* terms) {
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    const float e = std::exp(x[i] - shift);
    if (terms) terms[i] = e;
    sum += e;
  }
  return sum;
}

void scale_scalar(float* x, int64_t n, float factor) {
  for (int64_t i = 0; i < n; ++i) x[i] *= factor;
}

#if defined(__x86_64__) && defined(__GNUC__)

__attribute__((target("avx2,fma"))) double exp_sum_avx2(const float* x, int64_t n, float shift,
                                                        float* terms) {
  const __m256 s = _mm256_set1_ps(shift);
  // Partial sums per block of 1024 go into a double, so that a 150k-token row loses nothing.
  double total = 0.0;
  int64_t i = 0;
  while (i + 8 <= n) {
    __m256 acc = _mm256_setzero_ps();
    const int64_t block_end = std::min(n - n % 8, i + 1024);
    for (; i < block_end; i += 8) {
      const __m256 e = detail::exp_nonpositive(_mm256_sub_ps(_mm256_loadu_ps(x + i), s));
      if (terms) _mm256_storeu_ps(terms + i, e);
      acc = _mm256_add_ps(acc, e);
    }
    total += detail::horizontal_sum(acc);
  }
  return total + exp_sum_scalar(x + i, n - i, shift, terms ? terms + i : nullptr);
}

__attribute__((target("avx2"))) void scale_avx2(float* x, int64_t n, float factor) {
  const __m256 f = _mm256_set1_ps(factor);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), f));
  scale_scalar(x + i, n - i, factor);
}

#endif

double exp_sum(const float* x, int64_t n, float shift, float* terms) {
#if defined(__x86_64__) && defined(__GNUC__)
  if (detail::cpu_has_avx2_fma()) return exp_sum_avx2(x, n, shift, terms);
#endif
  return exp_sum_scalar(x, n, shift, terms);
}

void scale(float* x, int64_t n, float factor) {
#if defined(__x86_64__) && defined(__GNUC__)
  if (detail::cpu_has_avx2()) return scale_avx2(x, n, factor);
#endif
  scale_scalar(x, n, factor);
}

}  // namespace

bool softmax_cross_entropy_supported(const at::Tensor& logits, const at::Tensor& targets) {
  if (!logits.defined() || !targets.defined()) return false;
  if (logits.scalar_type() != at::kFloat || !logits.is_cpu() || logits.dim() != 2) return false;
  if (logits.size(1) == 0 || logits.stride(1) != 1) return false;
  return targets.scalar_type() == at::kLong && targets.is_cpu() && targets.dim() == 1 &&
         targets.size(0) == logits.size(0);
}

SoftmaxCrossEntropy softmax_cross_entropy(const at::Tensor& logits, const at::Tensor& targets,
                                          int64_t ignore_index, bool with_gradient,
                                          float gradient_scale) {
  STUNT_CHECK(softmax_cross_entropy_supported(logits, targets),
              "softmax_cross_entropy: unsupported inputs logits ", logits.sizes(), " ",
              logits.scalar_type(), ", targets ", targets.sizes(), " ", targets.scalar_type(),
              "; check softmax_cross_entropy_supported() first");
  const int64_t rows = logits.size(0);
  const int64_t vocab = logits.size(1);
  const int64_t row_stride = logits.stride(0);
  const at::Tensor target = targets.contiguous();
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t t = target.const_data_ptr<int64_t>()[r];
    STUNT_CHECK_AS(ValueError, t == ignore_index || (t >= 0 && t < vocab), "target ", t, " at row ",
                   r, " is outside the vocabulary [0, ", vocab, ")");
  }
  SoftmaxCrossEntropy out;
  out.losses = at::empty({rows}, logits.options().dtype(at::kDouble));
  if (with_gradient) out.gradient = at::empty({rows, vocab}, logits.options());
  const float* xs = logits.const_data_ptr<float>();
  const int64_t* ts = target.const_data_ptr<int64_t>();
  double* losses = out.losses.data_ptr<double>();
  float* gradient = with_gradient ? out.gradient.data_ptr<float>() : nullptr;
  at::parallel_for(0, rows, 1, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const float* row = xs + r * row_stride;
      float* g = gradient ? gradient + r * vocab : nullptr;
      if (ts[r] == ignore_index) {
        losses[r] = 0.0;
        if (g) std::fill(g, g + vocab, 0.0f);
        continue;
      }
      const float shift = detail::row_max(row, vocab);
      if (!std::isfinite(shift)) {
        // An infinite or NaN logit: the loss is not finite either, as with ATen.
        losses[r] = std::numeric_limits<double>::quiet_NaN();
        if (g) std::fill(g, g + vocab, std::numeric_limits<float>::quiet_NaN());
        continue;
      }
      const double sum = exp_sum(row, vocab, shift, g);
      losses[r] = std::log(sum) + shift - row[ts[r]];
      if (g) {
        scale(g, vocab, static_cast<float>(gradient_scale / sum));
        g[ts[r]] -= gradient_scale;
      }
    }
  });
  return out;
}

}  // namespace stunt::kernels
