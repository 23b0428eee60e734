#pragma once
/// Fake quantization inside the autograd graph, for quantization-aware training (QAT). The
/// forward values are compressed-tensors' (kernels/quantize.h: x / scale + zero point, clamp,
/// round half to even, back); what differs between the two estimators is the backward pass:
///   straight-through (STE): the gradient reaches x where x / scale + zero point rounds into
///     [q_min, q_max] and stops outside, as torch.fake_quantize_per_channel_affine's backward;
///     scales and zero points are constants (observers set them);
///   learned step size (LSQ, Esser et al. 2020; LSQ+ offsets, Bhalgat et al. 2020): scale and
///     zero point are parameters with torch._fake_quantize_learnable_per_channel_affine's
///     gradients, multiplied by a gradient scale (lsq_grad_factor).
/// Scales and zero points broadcast against x, shaped as qparams.h lays them out.

#include <ATen/core/Tensor.h>

#include "stunt/kernels/quantize.h"
#include "stunt/quant/qparams.h"
#include "stunt/quant/quant_args.h"

namespace stunt::quant {

/// Straight-through fake quantization of x. `zero_point` may be undefined (symmetric). Works
/// for fp8 e4m3 too (the gradient stops where |x / scale| exceeds 448).
at::Tensor fake_quantize_ste(const at::Tensor& x, const at::Tensor& scale,
                             const at::Tensor& zero_point, const kernels::QuantRange& range);

/// Fake quantization with a learned step size. `scale` (and, for asymmetric schemes, a float
/// `zero_point`, rounded and clamped into the range in the forward as torch does) receive
/// gradients multiplied by `grad_factor`, summed over the elements each one scales. Integer
/// ranges only; `zero_point` may be undefined (symmetric: no offset is learned).
at::Tensor fake_quantize_lsq(const at::Tensor& x, const at::Tensor& scale,
                             const at::Tensor& zero_point, const kernels::QuantRange& range,
                             double grad_factor);

/// LSQ's gradient scale 1 / sqrt(N * q_max) for a step size that scales N elements: it keeps
/// the step size's update in proportion to the weights' (Esser et al. 2020, section 2.2).
double lsq_grad_factor(int64_t elements_per_scale, const kernels::QuantRange& range);

/// How a weight or an activation is fake-quantized during training.
enum class FakeQuantEstimator { StraightThrough, LearnedStepSize };

/// A [out, in] weight fake-quantized with `qparams` laid out for `args` (tensor [1], channel
/// [out, 1], group [out, in / group_size]). With LearnedStepSize, qparams.scale (and for
/// asymmetric schemes qparams.zero_point) are the parameters that receive gradients; the
/// gradient scale follows from the number of weights each scale covers.
at::Tensor fake_quantize_weight_for_training(const at::Tensor& weight, const QParams& qparams,
                                             const QuantArgs& args, FakeQuantEstimator estimator);

/// Activations [..., hidden] during training. Dynamic schemes take their qparams from x itself
/// (per token or per tensor, as fake_quantize_activation) and pass the gradient straight
/// through with those qparams held constant; static schemes use `fixed` (tensor strategy: one
/// scale), learned when `estimator` is LearnedStepSize.
at::Tensor fake_quantize_activation_for_training(const at::Tensor& x, const QuantArgs& args,
                                                 const QParams* fixed,
                                                 FakeQuantEstimator estimator);

}  // namespace stunt::quant
