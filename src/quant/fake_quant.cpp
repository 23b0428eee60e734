#include "stunt/quant/fake_quant.h"

#include <ATen/ATen.h>
#include <ATen/ExpandUtils.h>
#include <torch/csrc/autograd/custom_function.h>

#include <cmath>

#include "stunt/core/error.h"

namespace stunt::quant {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

/// x / scale + zero point, in x's dtype: the value compressed-tensors rounds.
at::Tensor scaled_input(const at::Tensor& x, const at::Tensor& scale,
                        const at::Tensor& zero_point) {
  at::Tensor scaled = x / scale.to(x.scalar_type());
  if (zero_point.defined()) scaled = scaled + zero_point.to(x.scalar_type());
  return scaled;
}

/// Where the straight-through gradient passes: x / scale + zero point rounds into the range
/// (torch's fake-quant mask), or for fp8 lies within it.
at::Tensor inside_range(const at::Tensor& scaled, const kernels::QuantRange& range) {
  if (range.is_float) return at::logical_and(scaled >= range.min, scaled <= range.max);
  const at::Tensor rounded = at::round(scaled);
  return at::logical_and(rounded >= range.min, rounded <= range.max);
}

struct StraightThroughFakeQuant : torch::autograd::Function<StraightThroughFakeQuant> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& scale,
                            const at::Tensor& zero_point, double range_min, double range_max,
                            bool is_float) {
    const kernels::QuantRange range{range_min, range_max, is_float};
    // An all-zero zero point stands for "symmetric": adding it changes no value.
    ctx->save_for_backward({inside_range(scaled_input(x, scale, zero_point), range)});
    return kernels::fake_quantize(x, scale, zero_point, range);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const at::Tensor inside = ctx->get_saved_variables()[0];
    const at::Tensor& dy = grad_outputs[0];
    return {at::where(inside, dy, at::zeros({}, dy.options())),
            at::Tensor(),
            at::Tensor(),
            at::Tensor(),
            at::Tensor(),
            at::Tensor()};
  }
};

struct LearnedStepSizeFakeQuant : torch::autograd::Function<LearnedStepSizeFakeQuant> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& scale,
                            const at::Tensor& zero_point, double range_min, double range_max,
                            double grad_factor) {
    // torch._fake_quantize_learnable_*: the float zero point is rounded and clamped into the
    // range before use, in the forward and in the gradients.
    const at::Tensor zp =
        at::clamp(at::round(zero_point.to(x.scalar_type())), range_min, range_max);
    const at::Tensor s = scale.to(x.scalar_type());
    const at::Tensor rounded = at::round(x / s + zp);
    const at::Tensor out = (at::clamp(rounded, range_min, range_max) - zp) * s;
    ctx->save_for_backward({x, s, zp, rounded, out});
    ctx->saved_data["range_min"] = range_min;
    ctx->saved_data["range_max"] = range_max;
    ctx->saved_data["grad_factor"] = grad_factor;
    ctx->saved_data["scale_dtype"] = static_cast<int64_t>(scale.scalar_type());
    ctx->saved_data["zero_point_dtype"] = static_cast<int64_t>(zero_point.scalar_type());
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const variable_list saved = ctx->get_saved_variables();
    const at::Tensor& x = saved[0];
    const at::Tensor& s = saved[1];
    const at::Tensor& zp = saved[2];
    const at::Tensor& rounded = saved[3];
    const at::Tensor& out = saved[4];
    const double range_min = ctx->saved_data["range_min"].toDouble();
    const double range_max = ctx->saved_data["range_max"].toDouble();
    const double grad_factor = ctx->saved_data["grad_factor"].toDouble();
    const auto scale_dtype = static_cast<c10::ScalarType>(ctx->saved_data["scale_dtype"].toInt());
    const auto zero_point_dtype =
        static_cast<c10::ScalarType>(ctx->saved_data["zero_point_dtype"].toInt());
    const at::Tensor& dy = grad_outputs[0];
    const at::Tensor below = rounded < range_min;
    const at::Tensor inside = at::logical_and(rounded >= range_min, rounded <= range_max);

    variable_list grads(6);
    grads[0] = at::where(inside, dy, at::zeros({}, dy.options()));
    if (ctx->needs_input_grad(1)) {
      // d out / d scale: (out - x) / scale inside the range (the rounding residual), and the
      // clamped level q_min - zp or q_max - zp outside it; in torch's order of products.
      const at::Tensor outside = at::where(below, range_min - zp, range_max - zp);
      const at::Tensor per_element =
          at::where(inside, dy * (out - x) * s.reciprocal(), dy * outside) * grad_factor;
      grads[1] = at::sum_to(per_element, s.sizes()).to(scale_dtype);
    }
    if (ctx->needs_input_grad(2)) {
      // The zero point cancels inside the range; outside, out = (q_limit - zp) * scale.
      const at::Tensor per_element =
          at::where(inside, at::zeros({}, dy.options()), dy * (-s)) * grad_factor;
      grads[2] = at::sum_to(per_element, zp.sizes()).to(zero_point_dtype);
    }
    return grads;
  }
};

/// The gradient scale's N for activations: the features of one example (LSQ's N_F), i.e. every
/// element but the leading batch dimension.
int64_t features_per_example(const at::Tensor& x) {
  return x.dim() >= 2 ? x.numel() / std::max<int64_t>(x.size(0), 1) : x.numel();
}

}  // namespace

at::Tensor fake_quantize_ste(const at::Tensor& x, const at::Tensor& scale,
                             const at::Tensor& zero_point, const kernels::QuantRange& range) {
  STUNT_CHECK(scale.defined(), "fake_quantize_ste: the scale is undefined");
  const at::Tensor zp = zero_point.defined() ? zero_point : at::zeros_like(scale);
  return StraightThroughFakeQuant::apply(x, scale, zp, range.min, range.max, range.is_float);
}

at::Tensor fake_quantize_lsq(const at::Tensor& x, const at::Tensor& scale,
                             const at::Tensor& zero_point, const kernels::QuantRange& range,
                             double grad_factor) {
  STUNT_CHECK_AS(ValueError, !range.is_float,
                 "learned step sizes (learnable_scales) need an integer type; fp8 has no uniform "
                 "step to learn: use the straight-through estimator for fp8 schemes");
  STUNT_CHECK(scale.defined(), "fake_quantize_lsq: the scale is undefined");
  const at::Tensor zp = zero_point.defined() ? zero_point : at::zeros_like(scale);
  return LearnedStepSizeFakeQuant::apply(x, scale, zp, range.min, range.max, grad_factor);
}

double lsq_grad_factor(int64_t elements_per_scale, const kernels::QuantRange& range) {
  STUNT_CHECK(elements_per_scale > 0 && range.max > 0, "lsq_grad_factor: needs elements (got ",
              elements_per_scale, ") and a positive q_max (got ", range.max, ")");
  return 1.0 / std::sqrt(static_cast<double>(elements_per_scale) * range.max);
}

at::Tensor fake_quantize_weight_for_training(const at::Tensor& weight, const QParams& qparams,
                                             const QuantArgs& args, FakeQuantEstimator estimator) {
  STUNT_CHECK(weight.dim() == 2, "expected a [out, in] weight, got ", weight.sizes());
  const kernels::QuantRange range = quant_range(args);
  at::Tensor x = weight;
  at::Tensor scale = qparams.scale;
  at::Tensor zero_point = args.symmetric ? at::Tensor() : qparams.zero_point;
  switch (args.resolved_strategy()) {
    case QuantStrategy::Tensor:
    case QuantStrategy::Channel:
      break;
    case QuantStrategy::Group:
      // [out, in] as [out, groups, group_size] against scales [out, groups, 1].
      x = kernels::group_view(weight, *args.group_size);
      scale = scale.unsqueeze(-1);
      if (zero_point.defined()) zero_point = zero_point.unsqueeze(-1);
      break;
    default:
      throw ValueError(
          str("quantization-aware training cannot fake-quantize weights with "
              "strategy '",
              to_string(args.resolved_strategy()), "'; use tensor, channel or group"));
  }
  at::Tensor out;
  if (estimator == FakeQuantEstimator::StraightThrough) {
    out = fake_quantize_ste(x, scale, zero_point, range);
  } else {
    const int64_t per_scale = weight.numel() / qparams.scale.numel();
    out = fake_quantize_lsq(x, scale, zero_point, range, lsq_grad_factor(per_scale, range));
  }
  return out.reshape(weight.sizes());
}

at::Tensor fake_quantize_activation_for_training(const at::Tensor& x, const QuantArgs& args,
                                                 const QParams* fixed,
                                                 FakeQuantEstimator estimator) {
  const kernels::QuantRange range = quant_range(args);
  const QuantStrategy strategy = args.resolved_strategy();
  if (args.dynamic != DynamicKind::Static) {
    STUNT_CHECK_AS(ValueError, estimator == FakeQuantEstimator::StraightThrough,
                   "learned step sizes need static input scales; dynamic activations take "
                   "their scale from each input. Set input_activations.dynamic: false, or "
                   "learnable_scales: false");
    // The scale follows the input but is held constant in the backward pass, as a dynamic
    // quantizer at inference computes it outside any graph.
    const at::Tensor observed = x.detach();
    if (strategy == QuantStrategy::Token) {
      const at::Tensor rows = observed.reshape({-1, x.size(-1)});
      const QParams qp =
          compute_qparams(std::get<0>(rows.min(1, true)), std::get<0>(rows.max(1, true)), args);
      const at::Tensor zp = args.symmetric ? at::Tensor() : qp.zero_point;
      return fake_quantize_ste(x.reshape({-1, x.size(-1)}), qp.scale, zp, range).reshape(x.sizes());
    }
    STUNT_CHECK_AS(ValueError, strategy == QuantStrategy::Tensor,
                   "dynamic activation quantization supports strategies token and tensor, not '",
                   to_string(strategy), "'");
    const QParams qp =
        compute_qparams(observed.min().reshape({1}), observed.max().reshape({1}), args);
    return fake_quantize_ste(x, qp.scale, args.symmetric ? at::Tensor() : qp.zero_point, range);
  }
  STUNT_CHECK_AS(ValueError, strategy == QuantStrategy::Tensor,
                 "static activation quantization during training supports strategy tensor, "
                 "not '",
                 to_string(strategy), "'");
  STUNT_CHECK(fixed != nullptr && fixed->scale.defined(),
              "static activation quantization needs observed scales before training uses them");
  const at::Tensor zp = args.symmetric ? at::Tensor() : fixed->zero_point;
  if (estimator == FakeQuantEstimator::StraightThrough) {
    return fake_quantize_ste(x, fixed->scale, zp, range);
  }
  return fake_quantize_lsq(x, fixed->scale, zp, range,
                           lsq_grad_factor(features_per_example(x), range));
}

}  // namespace stunt::quant
