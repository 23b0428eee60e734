#pragma once
/// Linear layers on group-wise int4 weights with float32 activations (W4A16, weight-only), the
/// weights read packed: a batch-1 decode step streams half a byte per weight instead of four.
///
/// The weights are repacked once, at load, into the layout the kernel reads (never saved that
/// way; checkpoints keep compressed-tensors' pack-quantized layout). The product is computed in
/// the factored form y = Σ_groups s·(Σ_k u·x − z·Σ_k x), with u the stored unsigned nibble and z
/// the group's zero (8 for symmetric weights), so that each weight costs one conversion and one
/// fused multiply-add. It equals x·((u − z)·s)ᵀ up to float32 summation order; a reference path
/// that first rounds (u − z)·s to the scale's dtype (compressed-tensors dequantizes in bf16 for
/// bf16 scales) differs from it by that rounding, below 2⁻⁸ of each weight.

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>

namespace stunt::kernels {

/// Int4 weights [out, in] in the kernel's layout: columns in blocks of 16 output features; for
/// each block and each eight inputs k … k+7, 64 bytes whose 32-bit word j holds feature j's
/// eight nibbles, input k + i in bits 4i. One load gives sixteen columns × eight inputs, and
/// AVX-512 turns each nibble into a float with one permute.
struct Int4PackedWeight {
  /// uint8 [out / 16, in / 8, 16, 4].
  at::Tensor nibbles;
  /// float32 [out / 16, groups, 16]: the group scales.
  at::Tensor scales;
  /// float32 [out / 16, groups, 16]: the unsigned zero (zero_point + 8), or undefined for
  /// symmetric weights (zero 8).
  at::Tensor zeros;
  int64_t out_features = 0;
  int64_t in_features = 0;
  int64_t group_size = 0;

  /// Bytes held: nibbles, scales and zeros.
  int64_t bytes() const;
};

/// Packs signed int4 values q ∈ [−8, 7] (any integer or floating dtype holding integers,
/// [out, in]) with scales [out, groups] and zero points [out, groups] (undefined: symmetric).
/// Groups split `in` evenly (groups = 1 for per-channel scales). Throws ValueError naming the
/// problem when out is not a multiple of 16, the group size not of 8, a value lies outside
/// [−8, 7] or a zero point outside [−8, 7].
Int4PackedWeight pack_int4_weight(const at::Tensor& q, const at::Tensor& scale,
                                  const at::Tensor& zero_point);

/// (q − z)·s as float32 [out, in]: the weights the kernel multiplies by.
at::Tensor dequantize_int4_weight(const Int4PackedWeight& weight);

/// Whether int4_linear() takes these inputs: a float32 CPU input [..., in] without an autograd
/// graph to record, bias undefined or float32 [out]. When it does not and `why` is given, says
/// why in a sentence.
bool int4_linear_supported(const at::Tensor& input, const Int4PackedWeight& weight,
                           const at::Tensor& bias, std::string* why = nullptr);

/// input · ((q − z)·s)ᵀ + bias, as float32 [..., out]. Small batches (decode, short prompts) run
/// the register-tiled kernel (AVX-512 or AVX2, chosen at run time; baseline vectors elsewhere);
/// large ones dequantize a panel of columns at a time and multiply it with LibTorch's matrix
/// product, so that prefill never falls below the dense speed.
at::Tensor int4_linear(const at::Tensor& input, const Int4PackedWeight& weight,
                       const at::Tensor& bias);

/// The tile kernel for one instruction set, whatever the number of rows: "avx512", "avx2" or
/// "portable". For tests and benchmarks, which hold each form to the reference; throws
/// NotImplementedError when this CPU lacks the instruction set.
at::Tensor int4_linear_tiles(const at::Tensor& input, const Int4PackedWeight& weight,
                             const std::string& isa);

/// Which path int4_linear() takes for `rows` input rows on this CPU: "int4-tiles-avx512",
/// "int4-tiles-avx2", "int4-tiles-portable" or "int4-panels-sgemm".
std::string int4_linear_path(int64_t rows);

}  // namespace stunt::kernels
