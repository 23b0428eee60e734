#include "stunt/kernels/column_square_sums.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "cpu_features.h"
#include "stunt/core/error.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif

namespace stunt::kernels {
namespace {

/// Rows summed in float32 before the partial sums move to float64: short enough to keep
/// float32's rounding negligible, long enough that the float64 adds cost little.
constexpr int64_t kRowsPerPartial = 64;

/// partial[c] += row[c]² for c in [0, width).
void add_squares_scalar(float* __restrict partial, const float* __restrict row, int64_t width) {
  for (int64_t c = 0; c < width; ++c) partial[c] += row[c] * row[c];
}

/// total[c] += partial[c] for c in [0, width).
void add_partials_scalar(double* __restrict total, const float* __restrict partial, int64_t width) {
  for (int64_t c = 0; c < width; ++c) total[c] += partial[c];
}

#if defined(__x86_64__) && defined(__GNUC__)

__attribute__((target("avx2,fma"))) void add_squares_avx2(float* __restrict partial,
                                                          const float* __restrict row,
                                                          int64_t width) {
  int64_t c = 0;
  for (; c + 8 <= width; c += 8) {
    const __m256 x = _mm256_loadu_ps(row + c);
    _mm256_storeu_ps(partial + c, _mm256_fmadd_ps(x, x, _mm256_loadu_ps(partial + c)));
  }
  for (; c < width; ++c) partial[c] = std::fma(row[c], row[c], partial[c]);
}

__attribute__((target("avx2"))) void add_partials_avx2(double* __restrict total,
                                                       const float* __restrict partial,
                                                       int64_t width) {
  int64_t c = 0;
  for (; c + 4 <= width; c += 4) {
    const __m256d p = _mm256_cvtps_pd(_mm_loadu_ps(partial + c));
    _mm256_storeu_pd(total + c, _mm256_add_pd(_mm256_loadu_pd(total + c), p));
  }
  for (; c < width; ++c) total[c] += partial[c];
}

#endif

void add_squares(float* partial, const float* row, int64_t width) {
#if defined(__x86_64__) && defined(__GNUC__)
  if (detail::cpu_has_avx2_fma()) {
    add_squares_avx2(partial, row, width);
    return;
  }
#endif
  add_squares_scalar(partial, row, width);
}

void add_partials(double* total, const float* partial, int64_t width) {
#if defined(__x86_64__) && defined(__GNUC__)
  if (detail::cpu_has_avx2()) {
    add_partials_avx2(total, partial, width);
    return;
  }
#endif
  add_partials_scalar(total, partial, width);
}

}  // namespace

at::Tensor column_square_sums(const at::Tensor& x) {
  STUNT_CHECK(x.dim() == 2 && x.scalar_type() == at::kFloat && x.is_cpu(),
              "column_square_sums: float32 CPU [rows, columns] expected, got ", x.scalar_type(),
              " ", x.sizes());
  const at::Tensor values = x.stride(1) == 1 ? x : x.contiguous();
  const int64_t rows = values.size(0), columns = values.size(1), stride = values.stride(0);
  const float* data = values.const_data_ptr<float>();
  at::Tensor sums = at::empty({columns}, at::kFloat);
  float* out = sums.data_ptr<float>();
  // Threads take column ranges, so that each column's sum is added in row order whatever the
  // thread count.
  at::parallel_for(0, columns, 64, [&](int64_t begin, int64_t end) {
    const int64_t width = end - begin;
    std::vector<double> total(static_cast<size_t>(width), 0.0);
    std::vector<float> partial(static_cast<size_t>(width));
    for (int64_t r0 = 0; r0 < rows; r0 += kRowsPerPartial) {
      std::fill(partial.begin(), partial.end(), 0.0f);
      for (int64_t r = r0; r < std::min(rows, r0 + kRowsPerPartial); ++r) {
        add_squares(partial.data(), data + r * stride + begin, width);
      }
      add_partials(total.data(), partial.data(), width);
    }
    for (int64_t c = 0; c < width; ++c) out[begin + c] = static_cast<float>(total[c]);
  });
  return sums;
}

}  // namespace stunt::kernels
