#include "stunt/kernels/row_selection.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <vector>

#include "stunt/core/error.h"

namespace stunt::kernels {

at::Tensor lowest_per_row(const at::Tensor& scores, int64_t k) {
  STUNT_CHECK(scores.dim() == 2 && scores.scalar_type() == at::kFloat,
              "lowest_per_row: float32 [rows, columns] scores, got ", scores.scalar_type(), " ",
              scores.sizes());
  const int64_t rows = scores.size(0);
  const int64_t columns = scores.size(1);
  STUNT_CHECK(k >= 0 && k <= columns, "lowest_per_row: cannot choose ", k, " of ", columns,
              " columns");
  const at::Tensor values = scores.contiguous();
  at::Tensor chosen = at::zeros({rows, columns}, at::kBool);
  if (k == 0 || rows == 0) return chosen;
  const float* s = values.data_ptr<float>();
  bool* out = chosen.data_ptr<bool>();
  at::parallel_for(0, rows, 16, [&](int64_t begin, int64_t end) {
    std::vector<float> scratch(static_cast<size_t>(columns));
    for (int64_t r = begin; r < end; ++r) {
      const float* row = s + r * columns;
      bool* mark = out + r * columns;
      // The k-th smallest value: everything below it is chosen, and as many of its ties as
      // are still needed, from the left.
      std::copy(row, row + columns, scratch.begin());
      std::nth_element(scratch.begin(), scratch.begin() + (k - 1), scratch.end());
      const float kth = scratch[static_cast<size_t>(k - 1)];
      int64_t below = 0;
      for (int64_t c = 0; c < columns; ++c) below += row[c] < kth;
      int64_t ties = k - below;
      for (int64_t c = 0; c < columns; ++c) {
        if (row[c] < kth) {
          mark[c] = true;
        } else if (row[c] == kth && ties > 0) {
          mark[c] = true;
          --ties;
        }
      }
    }
  });
  return chosen;
}

}  // namespace stunt::kernels
