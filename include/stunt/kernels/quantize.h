#pragma once
/// Reference quantization ops in plain LibTorch: the oracle every faster kernel is tested
/// against. The arithmetic is compressed-tensors': q = clamp(round_half_even(x / scale + zp)),
/// x' = (q - zp) * scale, in the dtype of x. Scales and zero points broadcast against x: callers
/// shape them ([1], [rows, 1], [rows, groups, 1] after group_view, ...).

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace stunt::kernels {

/// The representable range of a quantized type: [-2^(b-1), 2^(b-1) - 1] for b-bit integers,
/// [-448, 448] for fp8 e4m3.
struct QuantRange {
  double min = -128;
  double max = 127;
  /// fp8 e4m3: values are cast to float8_e4m3fn (round to nearest even) instead of rounded.
  bool is_float = false;

  static QuantRange int_bits(int bits);
  static QuantRange fp8_e4m3();
};

/// The quantized values of x, still in x's floating dtype (integers for int types; fp8-rounded
/// values for fp8). zero_point may be undefined (symmetric).
at::Tensor quantize(const at::Tensor& x, const at::Tensor& scale, const at::Tensor& zero_point,
                    const QuantRange& range);
/// (q - zero_point) * scale, in scale's dtype.
at::Tensor dequantize(const at::Tensor& q, const at::Tensor& scale, const at::Tensor& zero_point);
/// dequantize(quantize(x)), in x's dtype.
at::Tensor fake_quantize(const at::Tensor& x, const at::Tensor& scale, const at::Tensor& zero_point,
                         const QuantRange& range);

/// [rows, cols] viewed as [rows, cols / group_size, group_size]; cols must be a multiple.
at::Tensor group_view(const at::Tensor& x, int64_t group_size);

/// Packs signed b-bit integers (b = 4 or 8) of a [rows, cols] tensor into int32 words along
/// dim 1: b-bit values are made unsigned by adding 2^(b-1), element i of a row takes bits
/// [i*b, (i+1)*b) of a little-endian word stream, element 0 in the lowest bits. The result is
/// [rows, ceil(cols * b / 32)]; a partial last word is zero-filled.
at::Tensor pack_int32(const at::Tensor& values, int bits);
/// The inverse of pack_int32: int32 [rows, words] back to int32 values [rows, cols].
at::Tensor unpack_int32(const at::Tensor& packed, int bits, int64_t cols);

}  // namespace stunt::kernels
