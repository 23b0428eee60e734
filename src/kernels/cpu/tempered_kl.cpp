#include "stunt/kernels/tempered_kl.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

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

// One row pair: s, t the student's and teacher's logits; with e_s = exp((s − max s)/T) and
// e_t = exp((t − max t)/T), q = e_s / Σe_s and p = e_t / Σe_t, and
//   log p − log q = (t − s)/T + (max s − max t)/T − log Σe_t + log Σe_s,
// so KL = Σ e_t · (t − s) / (T · Σe_t) + (max s − max t)/T − log Σe_t + log Σe_s, which needs
// only sums; the gradient pass recomputes e_t rather than keeping a second row.
struct RowSums {
  double student = 0.0;   // Σ e_s
  double teacher = 0.0;   // Σ e_t
  double weighted = 0.0;  // Σ e_t · (t − s)
};

RowSums row_sums_scalar(const float* s, const float* t, int64_t n, float shift_s, float shift_t,
                        float inv_t, float* terms) {
  RowSums out;
  for (int64_t i = 0; i < n; ++i) {
    const float es = std::exp((s[i] - shift_s) * inv_t);
    const float et = std::exp((t[i] - shift_t) * inv_t);
    if (terms) terms[i] = es;
    out.student += es;
    out.teacher += et;
    out.weighted += static_cast<double>(et) * (static_cast<double>(t[i]) - s[i]);
  }
  return out;
}

void gradient_scalar(const float* t, int64_t n, float shift_t, float inv_t, float student_factor,
                     float teacher_factor, float* g) {
  for (int64_t i = 0; i < n; ++i) {
    g[i] = g[i] * student_factor - std::exp((t[i] - shift_t) * inv_t) * teacher_factor;
  }
}

#if defined(__x86_64__) && defined(__GNUC__)

__attribute__((target("avx2,fma"))) RowSums row_sums_avx2(const float* s, const float* t, int64_t n,
                                                          float shift_s, float shift_t, float inv_t,
                                                          float* terms) {
  const __m256 ms = _mm256_set1_ps(shift_s);
  const __m256 mt = _mm256_set1_ps(shift_t);
  const __m256 k = _mm256_set1_ps(inv_t);
  RowSums out;
  int64_t i = 0;
  // Float partial sums per block of 512 go into doubles, so that a 150k-token row loses nothing.
  while (i + 8 <= n) {
    __m256 sum_s = _mm256_setzero_ps();
    __m256 sum_t = _mm256_setzero_ps();
    __m256 sum_w = _mm256_setzero_ps();
    const int64_t block_end = std::min(n - n % 8, i + 512);
    for (; i < block_end; i += 8) {
      const __m256 vs = _mm256_loadu_ps(s + i);
      const __m256 vt = _mm256_loadu_ps(t + i);
      const __m256 es = detail::exp_nonpositive(_mm256_mul_ps(_mm256_sub_ps(vs, ms), k));
      const __m256 et = detail::exp_nonpositive(_mm256_mul_ps(_mm256_sub_ps(vt, mt), k));
      if (terms) _mm256_storeu_ps(terms + i, es);
      sum_s = _mm256_add_ps(sum_s, es);
      sum_t = _mm256_add_ps(sum_t, et);
      sum_w = _mm256_fmadd_ps(et, _mm256_sub_ps(vt, vs), sum_w);
    }
    out.student += detail::horizontal_sum(sum_s);
    out.teacher += detail::horizontal_sum(sum_t);
    out.weighted += detail::horizontal_sum(sum_w);
  }
  const RowSums tail =
      row_sums_scalar(s + i, t + i, n - i, shift_s, shift_t, inv_t, terms ? terms + i : nullptr);
  out.student += tail.student;
  out.teacher += tail.teacher;
  out.weighted += tail.weighted;
  return out;
}

__attribute__((target("avx2,fma"))) void gradient_avx2(const float* t, int64_t n, float shift_t,
                                                       float inv_t, float student_factor,
                                                       float teacher_factor, float* g) {
  const __m256 mt = _mm256_set1_ps(shift_t);
  const __m256 k = _mm256_set1_ps(inv_t);
  const __m256 a = _mm256_set1_ps(student_factor);
  const __m256 b = _mm256_set1_ps(teacher_factor);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 et =
        detail::exp_nonpositive(_mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(t + i), mt), k));
    _mm256_storeu_ps(g + i, _mm256_fmsub_ps(_mm256_loadu_ps(g + i), a, _mm256_mul_ps(et, b)));
  }
  gradient_scalar(t + i, n - i, shift_t, inv_t, student_factor, teacher_factor, g + i);
}

#endif

RowSums row_sums(const float* s, const float* t, int64_t n, float shift_s, float shift_t,
                 float inv_t, float* terms) {
#if defined(__x86_64__) && defined(__GNUC__)
  if (detail::cpu_has_avx2_fma()) return row_sums_avx2(s, t, n, shift_s, shift_t, inv_t, terms);
#endif
  return row_sums_scalar(s, t, n, shift_s, shift_t, inv_t, terms);
}

void gradient(const float* t, int64_t n, float shift_t, float inv_t, float student_factor,
              float teacher_factor, float* g) {
#if defined(__x86_64__) && defined(__GNUC__)
  if (detail::cpu_has_avx2_fma()) {
    return gradient_avx2(t, n, shift_t, inv_t, student_factor, teacher_factor, g);
  }
#endif
  gradient_scalar(t, n, shift_t, inv_t, student_factor, teacher_factor, g);
}

}  // namespace

bool tempered_kl_supported(const at::Tensor& student, const at::Tensor& teacher) {
  auto fits = [](const at::Tensor& x) {
    return x.defined() && x.scalar_type() == at::kFloat && x.is_cpu() && x.dim() == 2 &&
           x.size(1) > 0 && x.stride(1) == 1;
  };
  return fits(student) && fits(teacher) && student.sizes() == teacher.sizes();
}

TemperedKl tempered_kl(const at::Tensor& student, const at::Tensor& teacher, double temperature,
                       bool with_gradient, float gradient_scale) {
  STUNT_CHECK(tempered_kl_supported(student, teacher), "tempered_kl: unsupported inputs ",
              student.sizes(), " ", student.scalar_type(), " and ", teacher.sizes(), " ",
              teacher.scalar_type(), "; check tempered_kl_supported() first");
  STUNT_CHECK(temperature > 0.0, "tempered_kl: temperature ", temperature);
  const int64_t rows = student.size(0);
  const int64_t vocab = student.size(1);
  TemperedKl out;
  out.losses = at::empty({rows}, student.options().dtype(at::kDouble));
  if (with_gradient) out.gradient = at::empty({rows, vocab}, student.options());
  const float* ss = student.const_data_ptr<float>();
  const float* ts = teacher.const_data_ptr<float>();
  double* losses = out.losses.data_ptr<double>();
  float* gradients = with_gradient ? out.gradient.data_ptr<float>() : nullptr;
  const auto inv_t = static_cast<float>(1.0 / temperature);
  at::parallel_for(0, rows, 1, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const float* s = ss + r * student.stride(0);
      const float* t = ts + r * teacher.stride(0);
      float* g = gradients ? gradients + r * vocab : nullptr;
      const float shift_s = detail::row_max(s, vocab);
      const float shift_t = detail::row_max(t, vocab);
      if (!std::isfinite(shift_s) || !std::isfinite(shift_t)) {
        // An infinite or NaN logit: the loss is not finite either, as with ATen's ops.
        losses[r] = std::numeric_limits<double>::quiet_NaN();
        if (g) std::fill(g, g + vocab, std::numeric_limits<float>::quiet_NaN());
        continue;
      }
      const RowSums sums = row_sums(s, t, vocab, shift_s, shift_t, inv_t, g);
      losses[r] = sums.weighted * inv_t / sums.teacher +
                  (static_cast<double>(shift_s) - shift_t) * inv_t - std::log(sums.teacher) +
                  std::log(sums.student);
      if (g) {
        gradient(t, vocab, shift_t, inv_t, static_cast<float>(gradient_scale / sums.student),
                 static_cast<float>(gradient_scale / sums.teacher), g);
      }
    }
  });
  return out;
}

}  // namespace stunt::kernels
