#include "stunt/kernels/quantize.h"

#include <ATen/ATen.h>

#include "stunt/core/error.h"

namespace stunt::kernels {

QuantRange QuantRange::int_bits(int bits) {
  STUNT_CHECK(bits >= 1 && bits <= 16, "integer quantization needs 1 to 16 bits, got ", bits);
  const double half = static_cast<double>(int64_t{1} << (bits - 1));
  return {-half, half - 1, false};
}

QuantRange QuantRange::fp8_e4m3() { return {-448.0, 448.0, true}; }

at::Tensor quantize(const at::Tensor& x, const at::Tensor& scale, const at::Tensor& zero_point,
                    const QuantRange& range) {
  at::Tensor scaled = x / scale.to(x.scalar_type());
  if (zero_point.defined()) scaled = scaled + zero_point.to(x.scalar_type());
  if (range.is_float) {
    return scaled.clamp(range.min, range.max).to(at::kFloat8_e4m3fn).to(x.scalar_type());
  }
  // at::round rounds half to even, as torch.round does.
  return at::round(scaled.clamp(range.min, range.max));
}

at::Tensor dequantize(const at::Tensor& q, const at::Tensor& scale, const at::Tensor& zero_point) {
  at::Tensor values = q.to(scale.scalar_type());
  if (zero_point.defined()) values = values - zero_point.to(scale.scalar_type());
  return values * scale;
}

at::Tensor fake_quantize(const at::Tensor& x, const at::Tensor& scale, const at::Tensor& zero_point,
                         const QuantRange& range) {
  return dequantize(quantize(x, scale, zero_point, range), scale, zero_point).to(x.scalar_type());
}

at::Tensor group_view(const at::Tensor& x, int64_t group_size) {
  STUNT_CHECK(x.dim() == 2, "group_view: expected a [rows, cols] tensor, got ", x.sizes());
  STUNT_CHECK(group_size > 0 && x.size(1) % group_size == 0, "group_view: ", x.size(1),
              " columns do not split into groups of ", group_size);
  return x.reshape({x.size(0), x.size(1) / group_size, group_size});
}

at::Tensor pack_int32(const at::Tensor& values, int bits) {
  STUNT_CHECK(bits == 4 || bits == 8, "packing supports 4 or 8 bits (the widths every ",
              "compressed-tensors version lays out alike), got ", bits);
  STUNT_CHECK(values.dim() == 2, "pack_int32: expected [rows, cols], got ", values.sizes());
  const int64_t per_word = 32 / bits;
  const int64_t rows = values.size(0);
  const int64_t cols = values.size(1);
  const int64_t words = (cols + per_word - 1) / per_word;
  at::Tensor unsigned_values = values.to(at::kLong) + (int64_t{1} << (bits - 1));
  const int64_t mask = (int64_t{1} << bits) - 1;
  STUNT_CHECK(unsigned_values.numel() == 0 || (unsigned_values.min().item<int64_t>() >= 0 &&
                                               unsigned_values.max().item<int64_t>() <= mask),
              "pack_int32: values outside the signed ", bits, "-bit range");
  if (words * per_word != cols) {
    unsigned_values = at::constant_pad_nd(unsigned_values, {0, words * per_word - cols}, 0);
  }
  at::Tensor shifts = at::arange(per_word, values.options().dtype(at::kLong)) * bits;
  // Each word is the sum of its elements shifted into place; computed in int64 and then
  // reinterpreted as int32 two's complement (the top element may set bit 31).
  at::Tensor combined =
      at::bitwise_left_shift(unsigned_values.reshape({rows, words, per_word}), shifts).sum(-1);
  return at::where(combined >= (int64_t{1} << 31), combined - (int64_t{1} << 32), combined)
      .to(at::kInt);
}

at::Tensor unpack_int32(const at::Tensor& packed, int bits, int64_t cols) {
  STUNT_CHECK(bits == 4 || bits == 8, "unpacking supports 4 or 8 bits, got ", bits);
  STUNT_CHECK(packed.dim() == 2 && packed.scalar_type() == at::kInt,
              "unpack_int32: expected int32 [rows, words], got ", packed.scalar_type(), " ",
              packed.sizes());
  const int64_t per_word = 32 / bits;
  STUNT_CHECK(packed.size(1) == (cols + per_word - 1) / per_word, "unpack_int32: ", packed.size(1),
              " words per row cannot hold ", cols, " values of ", bits, " bits (expected ",
              (cols + per_word - 1) / per_word, ")");
  at::Tensor words = at::bitwise_and(packed.to(at::kLong), int64_t{0xFFFFFFFF});
  at::Tensor shifts = at::arange(per_word, words.options()) * bits;
  at::Tensor values = at::bitwise_and(at::bitwise_right_shift(words.unsqueeze(-1), shifts),
                                      (int64_t{1} << bits) - 1);
  values = values.reshape({packed.size(0), -1}).narrow(1, 0, cols);
  return (values - (int64_t{1} << (bits - 1))).to(at::kInt);
}

}  // namespace stunt::kernels
