#pragma once
/// Counting zero elements, for sparsity reports, on any dtype safetensors can hold.

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace stunt::kernels {

/// Number of elements equal to zero (+0 and -0 alike). Works on every floating, fp8, fp4
/// (counted per 4-bit value), integer, bool and complex dtype; memory stays bounded for large
/// tensors. Returns counts in logical elements (two per float4_e2m1fn_x2 byte).
int64_t count_zeros(const at::Tensor& tensor);

/// Logical element count: numel(), doubled for float4_e2m1fn_x2.
int64_t logical_numel(const at::Tensor& tensor);

}  // namespace stunt::kernels
