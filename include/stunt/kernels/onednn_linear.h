#pragma once
/// Linear layers through oneDNN's matrix product, for calibration forwards. LibTorch's at::linear
/// calls MKL's sgemm, which on this project's AMD machine takes about a tenth longer than
/// oneDNN for a calibration forward's products (benchmarks/kernel_microbench.cpp, `Linear`).
/// LibTorch carries oneDNN as the operator mkldnn::_linear_pointwise, which this calls.

#include <ATen/core/Tensor.h>

namespace stunt::kernels {

/// Whether onednn_linear() takes these inputs: LibTorch was built with oneDNN, float32 CPU
/// tensors, input [..., in] and weight [out, in] contiguous, bias undefined or [out], and no
/// autograd graph to record (in grad mode, no tensor that requires grad).
bool onednn_linear_supported(const at::Tensor& input, const at::Tensor& weight,
                             const at::Tensor& bias);

/// input · weightᵀ + bias, as at::linear computes it. The sums may be blocked in another order
/// than MKL's, so results can differ from at::linear's in the last bits.
at::Tensor onednn_linear(const at::Tensor& input, const at::Tensor& weight, const at::Tensor& bias);

}  // namespace stunt::kernels
