#include "stunt/quant/gptq.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>

#include "stunt/core/error.h"
#include "stunt/core/logging.h"
#include "stunt/kernels/gptq_block.h"
#include "stunt/quant/observer.h"

namespace stunt::quant {

HessianAccumulator::HessianAccumulator(int64_t in_features, c10::ScalarType dtype)
    : sum_(at::zeros({in_features, in_features}, at::TensorOptions().dtype(dtype))) {}

at::Tensor HessianAccumulator::hessian() const {
  STUNT_CHECK(samples_ > 0, "the Hessian has seen no inputs; did calibration reach this layer?");
  // The sum is exact in its upper triangle (input_product leaves the lower one to this mirror).
  return at::triu(sum_).add_(at::triu(sum_, 1).t()).div_(static_cast<double>(samples_));
}

namespace {

/// Batch rows count as samples; a 2-D input is one sample.
int64_t samples_in(const at::Tensor& input) { return input.dim() >= 3 ? input.size(0) : 1; }

at::Tensor token_rows(const at::Tensor& input, c10::ScalarType dtype, int64_t width) {
  at::Tensor tokens = input.reshape({-1, input.size(-1)}).to(dtype);
  STUNT_CHECK(tokens.size(1) == width, "Hessian of ", width, " inputs received inputs of width ",
              tokens.size(1));
  return tokens;
}

}  // namespace

void HessianAccumulator::add(const at::Tensor& input) {
  const at::Tensor tokens = token_rows(input, sum_.scalar_type(), sum_.size(0));
  samples_ += samples_in(input);
  // llm-compressor sums (sqrt(2) X)^T (sqrt(2) X) and divides by the number of samples when
  // the Hessian is used; 2 X^T X is the same sum without scaling a copy of X.
  sum_.addmm_(tokens.t(), tokens, /*beta=*/1.0, /*alpha=*/2.0);
}

at::Tensor HessianAccumulator::input_product(const at::Tensor& input, c10::ScalarType dtype) {
  const at::Tensor tokens = token_rows(input, dtype, input.size(-1));
  const int64_t n = tokens.size(1);
  // xᵀx is symmetric: the products of column block i with blocks i.. (one matrix product per
  // block row, written in place) give the upper triangle at 5/8 of the work with 4 blocks;
  // hessian() mirrors it once instead of every forward. Narrow inputs are not worth splitting.
  constexpr int64_t kBlocks = 4;
  constexpr int64_t kMinBlock = 128;
  const int64_t block = std::max(kMinBlock, (n + kBlocks - 1) / kBlocks);
  if (block >= n) return at::mm(tokens.t(), tokens);
  at::Tensor product = at::empty({n, n}, tokens.options());
  for (int64_t i = 0; i < n; i += block) {
    const int64_t rows = std::min(block, n - i);
    at::Tensor block_row = product.narrow(0, i, rows);
    block_row.narrow(1, 0, i).zero_();
    at::Tensor upper = block_row.narrow(1, i, n - i);
    at::mm_out(upper, tokens.narrow(1, i, rows).t(), tokens.narrow(1, i, n - i));
  }
  return product;
}

void HessianAccumulator::add_product(const at::Tensor& product, const at::Tensor& input) {
  STUNT_CHECK(product.sizes() == sum_.sizes(), "Hessian of ", sum_.size(0),
              " inputs received a product of shape ", product.sizes());
  samples_ += samples_in(input);
  sum_.add_(product, /*alpha=*/2.0);
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

  // Scales come from the weight as it is, before GPTQ moves it (llm-compressor's order), in
  // float32 as llm-compressor computes them, also when GPTQ itself runs in float64.
  QParams qp = observer->update(compute == at::kDouble ? W.to(at::kFloat) : W);
  // Act-order 'weight': columns with the most input energy (largest Hessian diagonal) are
  // quantized first; groups stay the checkpoint's, so g_idx follows the permutation.
  at::Tensor perm;
  at::Tensor g_idx;
  if (grouped) g_idx = at::floor_divide(at::arange(columns, at::kLong), group_size);
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
    kernels::gptq_quantize_block(W1, Hinv1, scales1, zeros1, range, Q1, Err1, losses);
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
