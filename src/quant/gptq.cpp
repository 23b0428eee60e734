#include "stunt/quant/gptq.h"

#include <ATen/ATen.h>

#include <cmath>

#include "stunt/core/error.h"
#include "stunt/core/logging.h"
#include "stunt/quant/observer.h"

namespace stunt::quant {

HessianAccumulator::HessianAccumulator(int64_t in_features, c10::ScalarType dtype)
    : sum_(at::zeros({in_features, in_features}, at::TensorOptions().dtype(dtype))) {}

at::Tensor HessianAccumulator::hessian() const {
  STUNT_CHECK(samples_ > 0, "the Hessian has seen no inputs; did calibration reach this layer?");
  return sum_ / static_cast<double>(samples_);
}

void HessianAccumulator::add(const at::Tensor& input) {
  const int64_t added = input.dim() >= 3 ? input.size(0) : 1;
  at::Tensor tokens = input.reshape({-1, input.size(-1)}).to(sum_.scalar_type());
  STUNT_CHECK(tokens.size(1) == sum_.size(0), "Hessian of ", sum_.size(0),
              " inputs received inputs of width ", tokens.size(1));
  samples_ += added;
  // llm-compressor's order of operations: (sqrt(2) X)^T (sqrt(2) X) summed, divided by the
  // number of samples when the Hessian is used.
  tokens = tokens * std::sqrt(2.0);
  sum_.addmm_(tokens.t(), tokens);
}

namespace {

/// Upper Cholesky factor of H^-1, with H dampened; retries with more dampening when H is not
/// positive definite. Falls back to the identity (round to nearest) after the last retry.
at::Tensor inverse_hessian_factor(at::Tensor& hessian, const GptqOptions& options,
                                  double* dampening_used) {
  const at::Tensor diagonal = hessian.diagonal().clone();
  const double mean_diagonal = diagonal.mean().item<double>();
  double frac = options.dampening_frac;
  for (int attempt = 0; attempt <= options.max_dampening_retries; ++attempt) {
    at::Tensor dampened = hessian.clone();
    dampened.diagonal().add_(frac * mean_diagonal);
    auto [lower, info] = at::linalg_cholesky_ex(dampened);
    if (info.item<int64_t>() == 0) {
      at::Tensor inverse = at::cholesky_inverse(lower);
      auto [upper, info2] = at::linalg_cholesky_ex(inverse, /*upper=*/true);
      if (info2.item<int64_t>() == 0 && at::isfinite(upper).all().item<bool>()) {
        if (attempt > 0) {
          log::warn(options.layer, ": the Hessian is singular at dampening_frac ",
                    options.dampening_frac, "; used ", frac,
                    " instead (more or longer calibration samples avoid this)");
        }
        *dampening_used = frac;
        return upper;
      }
    }
    frac = frac > 0 ? frac * options.dampening_growth : 1e-4;
  }
  log::warn(options.layer, ": the Hessian stays singular even at dampening_frac ", frac,
            "; this layer falls back to round-to-nearest (more calibration data avoids this)");
  *dampening_used = frac;
  return at::eye(hessian.size(0), hessian.options());
}

}  // namespace

GptqResult gptq_quantize(const at::Tensor& weight, at::Tensor hessian, const QuantArgs& args,
                         const GptqOptions& options) {
  STUNT_CHECK(weight.dim() == 2, options.layer, ": GPTQ needs a [out, in] weight, got ",
              weight.sizes());
  const int64_t rows = weight.size(0);
  const int64_t columns = weight.size(1);
  STUNT_CHECK(hessian.dim() == 2 && hessian.size(0) == columns && hessian.size(1) == columns,
              options.layer, ": the Hessian is ", hessian.sizes(), ", expected [", columns, ", ",
              columns, "]");
  STUNT_CHECK(options.block_size > 0, "block_size must be positive, got ", options.block_size);
  check_finite(weight, options.layer);
  const QuantStrategy strategy = args.resolved_strategy();
  STUNT_CHECK(strategy == QuantStrategy::Tensor || strategy == QuantStrategy::Channel ||
                  strategy == QuantStrategy::Group,
              options.layer, ": GPTQ quantizes weights per tensor, channel or group, not '",
              to_string(strategy), "'");
  const bool grouped = strategy == QuantStrategy::Group;
  const int64_t group_size = grouped ? *args.group_size : columns;
  num_groups(args, columns, options.layer);  // checks divisibility

  const c10::ScalarType compute = hessian.scalar_type();
  at::Tensor W = weight.to(compute).clone();
  auto observer =
      Observer::create(args.observer.value_or("memoryless_minmax"), args, Observed::Weight);

  // Scales come from the weight as it is, before GPTQ moves it (llm-compressor's order).
  QParams qp = observer->update(W);
  // Act-order 'weight': columns with the most input energy (largest Hessian diagonal) are
  // quantized first; groups stay the checkpoint's, so g_idx follows the permutation.
  at::Tensor perm;
  at::Tensor g_idx;
  if (grouped) g_idx = at::arange(columns, at::kLong) / group_size;
  if (args.actorder.has_value()) {
    perm = at::argsort(hessian.diagonal(), /*stable=*/true, /*dim=*/0, /*descending=*/true);
    W = W.index_select(1, perm);
    hessian = hessian.index_select(0, perm).index_select(1, perm);
    if (grouped) g_idx = g_idx.index_select(0, perm);
  }
  qp.scale = qp.scale.to(compute);
  qp.zero_point = qp.zero_point.to(compute);

  // Inputs that never fire carry no information: fix their diagonal and zero their weights.
  const at::Tensor dead = hessian.diagonal() == 0;
  if (dead.any().item<bool>()) {
    hessian.diagonal().masked_fill_(dead, 1.0);
    W.masked_fill_(dead.unsqueeze(0), 0.0);
  }
  GptqResult result;
  const at::Tensor Hinv = inverse_hessian_factor(hessian, options, &result.dampening_used);

  const kernels::QuantRange range = quant_range(args);
  at::Tensor column_scale =
      strategy == QuantStrategy::Tensor ? qp.scale.expand({rows, 1}) : qp.scale;
  at::Tensor column_zero =
      strategy == QuantStrategy::Tensor ? qp.zero_point.expand({rows, 1}) : qp.zero_point;
  at::Tensor Q = at::empty_like(W);
  at::Tensor losses = at::zeros({rows}, W.options());
  const auto g_idx_data = grouped ? g_idx.contiguous() : at::Tensor();
  for (int64_t i1 = 0; i1 < columns; i1 += options.block_size) {
    const int64_t i2 = std::min(i1 + options.block_size, columns);
    const int64_t count = i2 - i1;
    at::Tensor W1 = W.narrow(1, i1, count).clone();
    at::Tensor Err1 = at::empty_like(W1);
    at::Tensor Hinv1 = Hinv.narrow(0, i1, count).narrow(1, i1, count);
    for (int64_t i = 0; i < count; ++i) {
      const at::Tensor w = W1.select(1, i);
      const double d = Hinv1[i][i].item<double>();
      const int64_t group = grouped ? g_idx_data[i1 + i].item<int64_t>() : 0;
      const at::Tensor s = column_scale.select(1, group);
      const at::Tensor z = args.symmetric ? at::Tensor() : column_zero.select(1, group);
      const at::Tensor q = kernels::fake_quantize(w, s, z, range);
      Q.select(1, i1 + i).copy_(q);
      const at::Tensor err = (w - q) / d;
      losses.add_(err.square() / 2.0);
      W1.narrow(1, i, count - i).sub_(at::outer(err, Hinv1[i].narrow(0, i, count - i)));
      Err1.select(1, i).copy_(err);
    }
    if (i2 < columns) {
      W.narrow(1, i2, columns - i2)
          .sub_(at::matmul(Err1, Hinv.narrow(0, i1, count).narrow(1, i2, columns - i2)));
    }
  }

  if (perm.defined()) {
    Q = Q.index_select(1, at::argsort(perm));
  }
  result.loss = losses.sum().item<double>();
  result.weight = Q.to(weight.scalar_type());
  result.qparams = {qp.scale.to(weight.scalar_type()), qp.zero_point.to(weight.scalar_type())};
  result.q = quantize_weight(result.weight, result.qparams, args);
  STUNT_ASSERT(at::isfinite(result.weight).all().item<bool>(), options.layer,
               ": GPTQ produced non-finite weights");
  return result;
}

}  // namespace stunt::quant
