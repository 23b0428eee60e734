#include "stunt/kernels/hessian.h"

#include <ATen/ATen.h>

#include <algorithm>

#include "stunt/core/error.h"
#include "stunt/core/logging.h"

namespace stunt::kernels {

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
  // block row, written in place) give the upper triangle at 9/16 of the work with 8 blocks;
  // hessian() mirrors it once instead of every forward. Narrow inputs are not worth splitting.
  constexpr int64_t kBlocks = 8;
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

at::Tensor fix_dead_inputs(at::Tensor& hessian) {
  const at::Tensor dead = hessian.diagonal() == 0;
  if (!dead.any().item<bool>()) return {};
  hessian.diagonal().masked_fill_(dead, 1.0);
  return dead;
}

at::Tensor inverse_hessian_factor(const at::Tensor& hessian, const DampeningOptions& options,
                                  double* dampening_used) {
  const at::Tensor diagonal = hessian.diagonal().clone();
  const double mean_diagonal = diagonal.mean().item<double>();
  double frac = options.frac;
  for (int attempt = 0; attempt <= options.max_retries; ++attempt) {
    at::Tensor dampened = hessian.clone();
    dampened.diagonal().add_(frac * mean_diagonal);
    auto [lower, info] = at::linalg_cholesky_ex(dampened);
    if (info.item<int64_t>() == 0) {
      at::Tensor inverse = at::cholesky_inverse(lower);
      auto [upper, info2] = at::linalg_cholesky_ex(inverse, /*upper=*/true);
      if (info2.item<int64_t>() == 0 && at::isfinite(upper).all().item<bool>()) {
        if (attempt > 0) {
          log::warn(options.layer, ": the Hessian is singular at dampening_frac ", options.frac,
                    "; used ", frac, " instead (more or longer calibration samples avoid this)");
        }
        *dampening_used = frac;
        return upper;
      }
    }
    frac = frac > 0 ? frac * options.growth : 1e-4;
  }
  log::warn(options.layer, ": the Hessian stays singular even at dampening_frac ", frac,
            "; this layer gets no second-order correction (more calibration data avoids this)");
  *dampening_used = frac;
  return at::eye(hessian.size(0), hessian.options());
}

at::Tensor InverseFactorCache::factor(const at::Tensor& hessian, const DampeningOptions& options,
                                      double* dampening_used) {
  const bool same =
      hessian_.defined() && options.frac == options_.frac && options.growth == options_.growth &&
      options.max_retries == options_.max_retries && hessian.sizes() == hessian_.sizes() &&
      hessian.scalar_type() == hessian_.scalar_type() && at::equal(hessian, hessian_);
  if (!same) {
    factor_ = inverse_hessian_factor(hessian, options, &dampening_used_);
    hessian_ = hessian.clone();
    options_ = options;
  } else if (dampening_used_ != options.frac) {
    log::warn(options.layer, ": reads the same singular Hessian as ", options_.layer,
              "; used dampening_frac ", dampening_used_, " like it");
  }
  *dampening_used = dampening_used_;
  return factor_;
}

void InverseFactorCache::clear() {
  hessian_ = at::Tensor();
  factor_ = at::Tensor();
}

}  // namespace stunt::kernels
