#pragma once
/// Linear layers on int8 weights and int8 activations (W8A8): an int8 matrix product with int32
/// sums. Few rows (decode) run Stunt's kernel on VNNI's u8 × s8 dot products; many rows
/// (prefill) run oneDNN's (LibTorch's onednn::qlinear_pointwise, with AMX where the CPU has
/// it), whose per-call setup costs more than the product at a decode step's sizes.
///
/// Activations are quantized per row (per token) as compressed-tensors' dynamic symmetric
/// scheme does: scale = max|x| / 127.5, q = round_half_even(clamp(x / scale, −128, 127)).
/// oneDNN takes unsigned activations, so the kernel feeds q + 128 with zero point 128; the
/// sums are exact, and y = (Σ q·w)·s_w·s_x equals the fake-quantized reference up to float32
/// rounding. Without VNNI, oneDNN's u8 × s8 products go through 16-bit pair sums that can
/// saturate, so the kernel refuses CPUs without it.

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <string>

namespace stunt::kernels {

struct Int8OnednnWeights;

/// Int8 weights [out, in] with per-output-channel scales, laid out for the small-batch kernel;
/// oneDNN's copy is made on the first call with many rows, so that a model that only decodes
/// holds one byte per weight.
struct Int8PackedWeight {
  /// int8 [out / 16, in / 4, 16, 4]: byte (b, k4, j, i) is the weight of column 16b + j and input
  /// 4·k4 + i. Undefined when out is not a multiple of 16 or in not of 4 (oneDNN then serves
  /// every call, prepacked at once).
  at::Tensor blocked;
  /// int32 [out]: 128·Σ_k w, what the unsigned activations add to each sum.
  at::Tensor offsets;
  /// float32 [out].
  at::Tensor scales;
  /// int64 [out] of zeros (symmetric weights), as oneDNN's operator wants them.
  at::Tensor zero_points;
  int64_t out_features = 0;
  int64_t in_features = 0;
  /// oneDNN's prepacked copy, shared by copies of this struct.
  std::shared_ptr<Int8OnednnWeights> onednn;

  /// Bytes of the int8 values, scales and offsets, plus oneDNN's copy once made.
  int64_t bytes() const;
  /// oneDNN's prepacked weights, made on first use.
  const at::Tensor& onednn_packed() const;
  /// A deep copy (its own memory, its own oneDNN copy to come), for benchmarks.
  Int8PackedWeight clone() const;
};

/// Activations quantized for int8_linear: values q + 128 as uint8 [rows, in] and a float32
/// scale per row [rows].
struct Int8Rows {
  at::Tensor values;
  at::Tensor scales;
};

/// Whether the oneDNN int8 product runs on this CPU and LibTorch; when it does not and `why`
/// is given, says why.
bool int8_linear_available(std::string* why = nullptr);

/// Prepacks int8 values q ∈ [−128, 127] ([out, in], any dtype holding integers) with
/// per-channel scales ([out], [out, 1]) or one scale ([1], [1, 1], a scalar). Throws ValueError
/// when the values or scales do not fit, RuntimeError when int8_linear_available() is false.
Int8PackedWeight pack_int8_weight(const at::Tensor& q, const at::Tensor& scale);

/// x [..., in] float32 quantized per row, dynamically (scale from each row's maximum).
Int8Rows quantize_rows_dynamic(const at::Tensor& x);

/// x [..., in] float32 quantized with one calibrated scale (static, symmetric).
Int8Rows quantize_rows_static(const at::Tensor& x, float scale);

/// The product of quantized rows and packed weights, plus bias (may be undefined): float32
/// [rows, out]. Both paths compute (Σ q_x·q_w)·s_w·s_x + bias with the same float steps.
at::Tensor int8_linear(const Int8Rows& x, const Int8PackedWeight& weight, const at::Tensor& bias);

/// Which path int8_linear() takes for `rows` rows of these weights: "int8-vnni-avx512",
/// "int8-vnni-avx2" or "int8-onednn".
std::string int8_linear_path(int64_t rows, const Int8PackedWeight& weight);

/// int8_linear() through oneDNN whatever the number of rows, for tests and benchmarks.
at::Tensor int8_linear_onednn(const Int8Rows& x, const Int8PackedWeight& weight,
                              const at::Tensor& bias);

}  // namespace stunt::kernels
