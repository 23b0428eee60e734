#pragma once
/// Float32 linear layers on weights packed once by MKL (cblas_sgemm_pack / cblas_sgemm_compute),
/// for inference. at::linear calls MKL's sgemm, which lays the weight out for its kernels on
/// every call once a product has a few dozen rows: a decode step of 64 rows spends about a
/// third of its product time copying weights. Packing at load time pays that once. The packed
/// products round as sgemm's own copy path does, so results match at::linear's bit for bit at
/// most shapes and in the last bits at the others.
///
/// LibTorch exports MKL's packed-GEMM functions when it is built with MKL (the x86 wheels);
/// they are looked up at run time, so that a LibTorch without them loads and uses at::linear.

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace stunt::kernels {

/// A float32 weight [out, in] in MKL's packed layout (as the B operand, transposed).
struct PackedFloatWeight {
  /// Bytes that MKL owns the layout of; never copied or moved (MKL's packed data is tied to
  /// its address).
  at::Tensor buffer;
  int64_t out_features = 0;
  int64_t in_features = 0;
};

/// Whether this LibTorch exports MKL's packed float32 GEMM.
bool packed_float_linear_available();

/// Packs a contiguous float32 CPU weight [out, in]. Requires packed_float_linear_available().
PackedFloatWeight pack_float_weight(const at::Tensor& weight);

/// Whether packed_float_linear() takes this call: float32 CPU input [..., in] and bias
/// undefined or float32 [out], and no autograd graph to record.
bool packed_float_linear_supported(const at::Tensor& input, const PackedFloatWeight& weight,
                                   const at::Tensor& bias);

/// input · weightᵀ + bias, [..., out].
at::Tensor packed_float_linear(const at::Tensor& input, const PackedFloatWeight& weight,
                               const at::Tensor& bias);

}  // namespace stunt::kernels
