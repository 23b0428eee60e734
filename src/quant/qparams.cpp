#include "stunt/quant/qparams.h"

#include <ATen/ATen.h>

#include <limits>

#include "stunt/core/error.h"

namespace stunt::quant {
namespace {

/// torch.finfo(dtype).eps.
double machine_epsilon(c10::ScalarType dtype) {
  switch (dtype) {
    case at::kDouble:
      return std::numeric_limits<double>::epsilon();
    case at::kHalf:
      return 0.0009765625;
    case at::kBFloat16:
      return 0.0078125;
    default:
      return std::numeric_limits<float>::epsilon();
  }
}

}  // namespace

kernels::QuantRange quant_range(const QuantArgs& args) {
  if (args.type == QuantType::Float) {
    STUNT_CHECK(args.num_bits == 8, "float quantization is fp8 e4m3 (num_bits 8), got ",
                args.num_bits, " bits");
    return kernels::QuantRange::fp8_e4m3();
  }
  return kernels::QuantRange::int_bits(args.num_bits);
}

QParams compute_qparams(const at::Tensor& min, const at::Tensor& max, const QuantArgs& args) {
  const kernels::QuantRange range = quant_range(args);
  const at::Tensor low = at::clamp_max(min, 0.0);
  const at::Tensor high = at::clamp_min(max, 0.0);
  const double span = range.max - range.min;
  // compressed-tensors replaces zero scales by the scale dtype's machine epsilon.
  const double eps = machine_epsilon(min.scalar_type());
  QParams q;
  if (args.symmetric) {
    q.scale = at::maximum(low.abs(), high.abs()) / (span / 2.0);
    q.scale = at::where(q.scale == 0, at::full_like(q.scale, eps), q.scale);
    q.zero_point = at::zeros_like(q.scale);
  } else {
    q.scale = (high - low) / span;
    q.scale = at::where(q.scale == 0, at::full_like(q.scale, eps), q.scale);
    q.zero_point = at::round(at::clamp(range.min - low / q.scale, range.min, range.max));
  }
  return q;
}

int64_t num_groups(const QuantArgs& args, int64_t in_features, const std::string& layer) {
  if (args.resolved_strategy() != QuantStrategy::Group) return 1;
  const int64_t g = args.group_size.value_or(0);
  STUNT_CHECK_AS(ValueError, g > 0 && in_features % g == 0, layer, ": group_size ", g,
                 " does not divide in_features ", in_features,
                 "; choose a group size that divides it (e.g. ",
                 in_features % 128 == 0 ? 128 : (in_features % 64 == 0 ? 64 : 32),
                 ") or add the layer to ignore");
  return in_features / g;
}

std::pair<at::Tensor, at::Tensor> weight_min_max(const at::Tensor& weight, const QuantArgs& args) {
  STUNT_CHECK(weight.dim() == 2, "expected a [out, in] weight, got ", weight.sizes());
  switch (args.resolved_strategy()) {
    case QuantStrategy::Tensor:
      return {weight.min().reshape({1}), weight.max().reshape({1})};
    case QuantStrategy::Channel:
      return {std::get<0>(weight.min(1, true)), std::get<0>(weight.max(1, true))};
    case QuantStrategy::Group: {
      at::Tensor groups = kernels::group_view(weight, *args.group_size);
      return {std::get<0>(groups.min(2)), std::get<0>(groups.max(2))};
    }
    default:
      throw ValueError(str("weights cannot use strategy '", to_string(args.resolved_strategy()),
                           "'; use tensor, channel or group"));
  }
}

at::Tensor expand_to_columns(const at::Tensor& per_group, const QuantArgs& args) {
  if (args.resolved_strategy() != QuantStrategy::Group) return per_group;
  return per_group.repeat_interleave(*args.group_size, 1);
}

at::Tensor quantize_weight(const at::Tensor& weight, const QParams& qparams,
                           const QuantArgs& args) {
  at::Tensor zp = args.symmetric ? at::Tensor() : expand_to_columns(qparams.zero_point, args);
  return kernels::quantize(weight, expand_to_columns(qparams.scale, args), zp, quant_range(args));
}

at::Tensor dequantize_weight(const at::Tensor& q, const QParams& qparams, const QuantArgs& args) {
  at::Tensor zp = args.symmetric ? at::Tensor() : expand_to_columns(qparams.zero_point, args);
  return kernels::dequantize(q, expand_to_columns(qparams.scale, args), zp);
}

at::Tensor fake_quantize_weight(const at::Tensor& weight, const QParams& qparams,
                                const QuantArgs& args) {
  return dequantize_weight(quantize_weight(weight, qparams, args), qparams, args)
      .to(weight.scalar_type());
}

at::Tensor fake_quantize_activation(const at::Tensor& x, const QuantArgs& args,
                                    const QParams* fixed) {
  const kernels::QuantRange range = quant_range(args);
  QParams qp;
  if (args.dynamic == DynamicKind::Static) {
    STUNT_CHECK(fixed != nullptr && fixed->scale.defined(),
                "static activation quantization needs calibrated scales");
    qp = *fixed;
  } else if (args.resolved_strategy() == QuantStrategy::Token) {
    at::Tensor rows = x.reshape({-1, x.size(-1)});
    qp = compute_qparams(std::get<0>(rows.min(1, true)), std::get<0>(rows.max(1, true)), args);
    at::Tensor zp = args.symmetric ? at::Tensor() : qp.zero_point;
    return kernels::fake_quantize(rows, qp.scale, zp, range).reshape(x.sizes());
  } else {
    STUNT_CHECK(args.resolved_strategy() == QuantStrategy::Tensor,
                "dynamic activation quantization supports strategies token and tensor, not '",
                to_string(args.resolved_strategy()), "'");
    qp = compute_qparams(x.min().reshape({1}), x.max().reshape({1}), args);
  }
  at::Tensor zp = args.symmetric ? at::Tensor() : qp.zero_point;
  return kernels::fake_quantize(x, qp.scale, zp, range);
}

void check_finite(const at::Tensor& weight, const std::string& name) {
  if (at::isfinite(weight).all().item<bool>()) return;
  const int64_t nan = at::isnan(weight).sum().item<int64_t>();
  const int64_t inf = at::isinf(weight).sum().item<int64_t>();
  throw ValueError(str(name, ": the weight holds ", nan, " NaN and ", inf,
                       " infinite values; quantizing it would give a broken model. Fix the "
                       "checkpoint (or the step that produced it), or add the layer to ignore"));
}

}  // namespace stunt::quant
