#pragma once
/// Per-column sums of squares of a matrix of activations, in one pass and without a squared
/// copy: Wanda's input norms, over every calibration token.

#include <ATen/core/Tensor.h>

namespace stunt::kernels {

/// float32 [columns]: sum over rows of x[row, column]² for float32 x [rows, columns]. Float32
/// sums of 64 rows are accumulated in float64, so that a sum over hundreds of thousands of
/// tokens keeps float32's precision; the result is the same whatever the thread count.
at::Tensor column_square_sums(const at::Tensor& x);

}  // namespace stunt::kernels
