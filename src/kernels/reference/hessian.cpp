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

namespace {

/// Columns [lo, hi) of xᵀx into `product`, upper triangle only: the two halves recursively and
/// the block between them as one matrix product. Halving keeps the products large (faster per
/// flop than a row of thin blocks) while the work tends to half of the full product.
void upper_product(const at::Tensor& tokens, at::Tensor& product, int64_t lo, int64_t hi) {
  constexpr int64_t kLeaf = 192;
  const int64_t n = hi - lo;
  if (n <= kLeaf) {
    at::Tensor out = product.narrow(0, lo, n).narrow(1, lo, n);
    at::mm_out(out, tokens.narrow(1, lo, n).t(), tokens.narrow(1, lo, n));
    return;
  }
  const int64_t mid = lo + n / 2;
  upper_product(tokens, product, lo, mid);
  upper_product(tokens, product, mid, hi);
  at::Tensor corner = product.narrow(0, lo, mid - lo).narrow(1, mid, hi - mid);
  at::mm_out(corner, tokens.narrow(1, lo, mid - lo).t(), tokens.narrow(1, mid, hi - mid));
  product.narrow(0, mid, hi - mid).narrow(1, lo, mid - lo).zero_();
}

}  // namespace

at::Tensor HessianAccumulator::input_product(const at::Tensor& input, c10::ScalarType dtype) {
  const at::Tensor tokens = token_rows(input, dtype, input.size(-1));
  const int64_t n = tokens.size(1);
  // xᵀx is symmetric: its upper triangle is enough, and hessian() mirrors it once instead of
  // every forward.
  at::Tensor product = at::empty({n, n}, tokens.options());
  upper_product(tokens, product, 0, n);
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

namespace {

/// L⁻¹ of a lower-triangular L by halves: [A 0; B C]⁻¹ = [A⁻¹ 0; -C⁻¹ B A⁻¹ C⁻¹], so that
/// most of the work is two matrix products per level.
at::Tensor lower_triangular_inverse(const at::Tensor& lower) {
  constexpr int64_t kLeaf = 128;
  const int64_t n = lower.size(0);
  if (n <= kLeaf) {
    return at::linalg_solve_triangular(lower, at::eye(n, lower.options()), /*upper=*/false);
  }
  const int64_t h = n / 2;
  const at::Tensor a_inv = lower_triangular_inverse(lower.narrow(0, 0, h).narrow(1, 0, h));
  const at::Tensor c_inv = lower_triangular_inverse(lower.narrow(0, h, n - h).narrow(1, h, n - h));
  at::Tensor inverse = at::zeros({n, n}, lower.options());
  inverse.narrow(0, 0, h).narrow(1, 0, h).copy_(a_inv);
  inverse.narrow(0, h, n - h).narrow(1, h, n - h).copy_(c_inv);
  at::Tensor corner = inverse.narrow(0, h, n - h).narrow(1, 0, h);
  at::mm_out(corner, c_inv, at::mm(lower.narrow(0, h, n - h).narrow(1, 0, h), a_inv));
  corner.neg_();
  return inverse;
}

/// The upper factor U of H⁻¹ (H⁻¹ = Uᵀ U) from one factorization: with J the order reversal,
/// J H J = L Lᵀ gives H⁻¹ = (J L⁻¹ J)ᵀ (J L⁻¹ J), and J L⁻¹ J is upper triangular with a positive
/// diagonal, so it is the Cholesky factor of H⁻¹ that GPTQ's Cholesky, inverse, Cholesky
/// computes, at a third of its work. Undefined when H is not positive definite.
at::Tensor upper_factor_of_inverse(const at::Tensor& hessian) {
  auto [lower, info] = at::linalg_cholesky_ex(hessian.flip({0, 1}));
  if (info.item<int64_t>() != 0) return {};
  at::Tensor upper = lower_triangular_inverse(lower).flip({0, 1});
  if (!at::isfinite(upper).all().item<bool>()) return {};
  return upper;
}

}  // namespace

at::Tensor inverse_hessian_factor(const at::Tensor& hessian, const DampeningOptions& options,
                                  double* dampening_used) {
  const at::Tensor diagonal = hessian.diagonal().clone();
  const double mean_diagonal = diagonal.mean().item<double>();
  double frac = options.frac;
  for (int attempt = 0; attempt <= options.max_retries; ++attempt) {
    at::Tensor dampened = hessian.clone();
    dampened.diagonal().add_(frac * mean_diagonal);
    at::Tensor upper = upper_factor_of_inverse(dampened);
    if (upper.defined()) {
      if (attempt > 0) {
        log::warn(options.layer, ": the Hessian is singular at dampening_frac ", options.frac,
                  "; used ", frac, " instead (more or longer calibration samples avoid this)");
      }
      *dampening_used = frac;
      return upper;
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
