#pragma once
/// The k lowest scores of every row, chosen as a stable ascending sort would choose them, without
/// sorting: Wanda prunes half of each of a model's weight rows this way.

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace stunt::kernels {

/// bool [rows, columns]: true at the k lowest of each row of `scores` (float32 [rows, columns],
/// finite), ties going to the lower column, exactly as the first k indices of a stable ascending
/// sort of the row.
at::Tensor lowest_per_row(const at::Tensor& scores, int64_t k);

}  // namespace stunt::kernels
