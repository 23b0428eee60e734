#include "stunt/quant/gptq.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>

#include "stunt/core/error.h"
#include "stunt/core/logging.h"
#include "stunt/kernels/gptq_block.h"
#include "stunt/kernels/hessian.h"
#include "stunt/quant/observer.h"

namespace stunt::quant {

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

  // Scales come from the weight as it is, before GPTQ moves it (llm-compressor's order), in
  // float32 as llm-compressor computes them, also when GPTQ itself runs in float64.
  QParams qp = observer->update(compute == at::kDouble ? W.to(at::kFloat) : W);
  // Act-order 'weight': columns with the most input energy (largest Hessian diagonal) are
  // quantized first; groups stay the checkpoint's, so g_idx follows the permutation.
  at::Tensor perm;
  at::Tensor g_idx;
  if (grouped) g_idx = at::floor_divide(at::arange(columns, at::kLong), group_size);
  at::Tensor pruned;
  if (options.pruned.defined()) {
    STUNT_CHECK(options.pruned.sizes() == weight.sizes(), options.layer, ": the mask is ",
                options.pruned.sizes(), ", the weight ", weight.sizes());
    pruned = options.pruned.to(at::kBool);
  }
  if (args.actorder.has_value()) {
    perm = at::argsort(hessian.diagonal(), /*stable=*/true, /*dim=*/0, /*descending=*/true);
    W = W.index_select(1, perm);
    if (pruned.defined()) pruned = pruned.index_select(1, perm);
    hessian = hessian.index_select(0, perm).index_select(1, perm);
    if (grouped) g_idx = g_idx.index_select(0, perm);
  }
  qp.scale = qp.scale.to(compute);
  qp.zero_point = qp.zero_point.to(compute);

  // Inputs that never fire carry no information: their weights are zeroed.
  const at::Tensor dead = kernels::fix_dead_inputs(hessian);
  if (dead.defined()) W.masked_fill_(dead.unsqueeze(0), 0.0);
  GptqResult result;
  kernels::DampeningOptions dampening;
  dampening.frac = options.dampening_frac;
  dampening.growth = options.dampening_growth;
  dampening.max_retries = options.max_dampening_retries;
  dampening.layer = options.layer;
  const at::Tensor Hinv =
      options.factor_cache != nullptr
          ? options.factor_cache->factor(hessian, dampening, &result.dampening_used)
          : kernels::inverse_hessian_factor(hessian, dampening, &result.dampening_used);

  const kernels::QuantRange range = quant_range(args);
  at::Tensor column_scale =
      strategy == QuantStrategy::Tensor ? qp.scale.expand({rows, 1}) : qp.scale;
  at::Tensor column_zero =
      strategy == QuantStrategy::Tensor ? qp.zero_point.expand({rows, 1}) : qp.zero_point;
  at::Tensor Q = at::empty_like(W);
  at::Tensor losses = at::zeros({rows}, W.options());
  // Each column's group (its scale and zero point column).
  const at::Tensor column_group = grouped ? g_idx : at::zeros({columns}, at::kLong);
  for (int64_t i1 = 0; i1 < columns; i1 += options.block_size) {
    const int64_t i2 = std::min(i1 + options.block_size, columns);
    const int64_t count = i2 - i1;
    at::Tensor W1 = W.narrow(1, i1, count).contiguous();
    const at::Tensor groups = column_group.narrow(0, i1, count);
    const at::Tensor scales1 = column_scale.index_select(1, groups).contiguous();
    const at::Tensor zeros1 =
        args.symmetric ? at::Tensor() : column_zero.index_select(1, groups).contiguous();
    at::Tensor Q1 = at::empty_like(W1);
    at::Tensor Err1 = at::empty_like(W1);
    const at::Tensor Hinv1 = Hinv.narrow(0, i1, count).narrow(1, i1, count).contiguous();
    const at::Tensor pruned1 =
        pruned.defined() ? pruned.narrow(1, i1, count).contiguous() : at::Tensor();
    kernels::gptq_quantize_block(W1, Hinv1, scales1, zeros1, pruned1, range, Q1, Err1, losses);
    Q.narrow(1, i1, count).copy_(Q1);
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
