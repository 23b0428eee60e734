#include "stunt/kernels/row_selection.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "stunt/core/error.h"

namespace stunt::kernels {
namespace {

/// An unsigned key ordered as the float is (negative floats reversed, the sign bit set on the
/// others). -0 becomes +0 first: equal floats get equal keys, so they tie as in a sort.
uint32_t order_key(float value) {
  value += 0.0f;
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  return (bits & 0x80000000u) != 0 ? ~bits : bits | 0x80000000u;
}

}  // namespace

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
    std::vector<uint32_t> keys(static_cast<size_t>(columns));
    std::vector<uint32_t> candidates(static_cast<size_t>(columns));
    for (int64_t r = begin; r < end; ++r) {
      const float* row = s + r * columns;
      bool* mark = out + r * columns;
      for (int64_t c = 0; c < columns; ++c) keys[c] = order_key(row[c]);
      // The k-th smallest key, a byte at a time from the top (radix select): each round keeps
      // the keys whose byte is the one the k-th falls in. `rank` ends as the k-th's position
      // among the keys equal to it.
      int64_t rank = k - 1;
      uint32_t kth = 0;
      const uint32_t* pool = keys.data();
      int64_t pool_size = columns;
      for (int shift = 24; shift >= 0; shift -= 8) {
        int64_t count[256] = {};
        for (int64_t i = 0; i < pool_size; ++i) ++count[(pool[i] >> shift) & 0xFF];
        uint32_t digit = 0;
        while (rank >= count[digit]) rank -= count[digit++];
        kth |= digit << shift;
        if (shift == 0) break;
        int64_t kept = 0;
        for (int64_t i = 0; i < pool_size; ++i) {
          if (((pool[i] >> shift) & 0xFF) == digit) candidates[kept++] = pool[i];
        }
        pool = candidates.data();
        pool_size = kept;
      }
      // Everything below the k-th is chosen, and as many of its ties as are needed, from the
      // left.
      int64_t ties = rank + 1;
      for (int64_t c = 0; c < columns; ++c) {
        if (keys[c] < kth) {
          mark[c] = true;
        } else if (keys[c] == kth && ties > 0) {
          mark[c] = true;
          --ties;
        }
      }
    }
  });
  return chosen;
}

}  // namespace stunt::kernels
