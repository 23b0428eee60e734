#include "stunt/kernels/column_square_sums.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <vector>

#include "stunt/core/error.h"

namespace stunt::kernels {
namespace {

/// Rows summed in float32 before the partial sums move to float64: short enough to keep
/// float32's rounding negligible, long enough that the float64 adds cost little.
constexpr int64_t kRowsPerPartial = 64;

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
      float* __restrict p = partial.data();
      for (int64_t r = r0; r < std::min(rows, r0 + kRowsPerPartial); ++r) {
        const float* __restrict row = data + r * stride + begin;
        for (int64_t c = 0; c < width; ++c) p[c] += row[c] * row[c];
      }
      for (int64_t c = 0; c < width; ++c) total[static_cast<size_t>(c)] += p[c];
    }
    for (int64_t c = 0; c < width; ++c) out[begin + c] = static_cast<float>(total[c]);
  });
  return sums;
}

}  // namespace stunt::kernels
