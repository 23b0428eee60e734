#pragma once
/// Scales and zero points for a QuantArgs, and quantizing whole weights and activations with
/// them, laid out as compressed-tensors lays them out: for a [out, in] weight the scale is
/// [1] (tensor), [out, 1] (channel) or [out, in / group_size] (group); activations per token
/// get one scale per row of the flattened [tokens, hidden] input.

#include <ATen/core/Tensor.h>

#include <utility>

#include "stunt/kernels/quantize.h"
#include "stunt/quant/quant_args.h"

namespace stunt::quant {

struct QParams {
  at::Tensor scale;
  /// Integer-valued, in the scale's dtype. Zeros for symmetric schemes.
  at::Tensor zero_point;
};

kernels::QuantRange quant_range(const QuantArgs& args);

/// compressed-tensors' calculate_qparams: min and max are widened to include 0; symmetric:
/// scale = max(|min|, |max|) / ((q_max - q_min) / 2), zero point 0; asymmetric:
/// scale = (max - min) / (q_max - q_min), zero point = clamp(round(q_min - min / scale)).
/// A zero scale (an all-zero group) becomes the dtype's eps.
QParams compute_qparams(const at::Tensor& min, const at::Tensor& max, const QuantArgs& args);

/// The per-strategy minimum and maximum of a [out, in] weight, shaped like its scale.
std::pair<at::Tensor, at::Tensor> weight_min_max(const at::Tensor& weight, const QuantArgs& args);

/// The scale layout for one [out, in] weight: the number of groups per row (1 for tensor and
/// channel). Throws ValueError naming `layer` when a group size does not divide in_features.
int64_t num_groups(const QuantArgs& args, int64_t in_features, const std::string& layer);

/// Broadcasts a weight's scale or zero point ([1], [out, 1] or [out, groups]) against [out, in].
at::Tensor expand_to_columns(const at::Tensor& per_group, const QuantArgs& args);

/// The integer values (in the weight's dtype) of a weight quantized with `qparams`.
at::Tensor quantize_weight(const at::Tensor& weight, const QParams& qparams, const QuantArgs& args);
/// The weight that integer values `q` stand for.
at::Tensor dequantize_weight(const at::Tensor& q, const QParams& qparams, const QuantArgs& args);
/// dequantize_weight(quantize_weight(...)).
at::Tensor fake_quantize_weight(const at::Tensor& weight, const QParams& qparams,
                                const QuantArgs& args);

/// Activations [..., hidden]: dynamic schemes compute their qparams from x itself (one per token
/// for strategy token, one for the tensor otherwise); static schemes use `fixed`.
at::Tensor fake_quantize_activation(const at::Tensor& x, const QuantArgs& args,
                                    const QParams* fixed = nullptr);

/// NaN or Inf anywhere in `weight` stops the run with the tensor's name.
void check_finite(const at::Tensor& weight, const std::string& name);

}  // namespace stunt::quant
