#pragma once
/// The second moment of a linear layer's inputs (the "Hessian" 2/n sum x xᵀ of GPTQ and
/// SparseGPT) and the factor of its inverse that both methods walk column by column.

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>

namespace stunt::kernels {

/// The Hessian 2/n * sum(x x^T) of a linear layer's inputs, n counting samples (rows of a
/// batch, not tokens) as llm-compressor does.
class HessianAccumulator {
 public:
  HessianAccumulator(int64_t in_features, c10::ScalarType dtype);
  /// input: [..., in_features]; the leading dims are flattened into tokens, and each batch row
  /// counts as one sample (2-D inputs count as one).
  void add(const at::Tensor& input);
  /// add() in two steps, for layers that read the same input (q, k and v; gate and up): the
  /// product xᵀx of `input` is computed once and added to each layer's accumulator. Only its
  /// upper triangle is meant to be read: the lower one may hold zeros.
  static at::Tensor input_product(const at::Tensor& input, c10::ScalarType dtype);
  void add_product(const at::Tensor& product, const at::Tensor& input);
  /// The Hessian so far (a new tensor); throws when nothing was added.
  at::Tensor hessian() const;
  int64_t samples() const { return samples_; }

 private:
  at::Tensor sum_;
  int64_t samples_ = 0;
};

struct DampeningOptions {
  /// Added to the Hessian's diagonal: frac * mean(diag(H)).
  double frac = 0.01;
  /// Multiplied into the dampening each time a Cholesky factorization fails.
  double growth = 10.0;
  int max_retries = 6;
  /// Names the layer in warnings.
  std::string layer;
};

/// Inputs that never fire carry no information: their diagonal entries become 1 (so H stays
/// invertible) and the returned mask [in] marks them, for the caller to zero their weights.
at::Tensor fix_dead_inputs(at::Tensor& hessian);

/// The upper Cholesky factor U of H^-1 (H^-1 = Uᵀ U) with H dampened: the factor the GPTQ paper
/// computes by Cholesky, inverse, Cholesky, here from one Cholesky of H in reversed order and a
/// triangular inverse (equal up to rounding). A factorization that fails is retried with
/// `growth` times more dampening and a warning; after the last retry the identity comes back
/// (the method then degrades to its data-free form) with a warning. *dampening_used receives the
/// fraction finally used.
at::Tensor inverse_hessian_factor(const at::Tensor& hessian, const DampeningOptions& options,
                                  double* dampening_used);

/// inverse_hessian_factor() that remembers its last answer: a block's q, k and v (gate and up)
/// read the same inputs, so their Hessians are equal and one factorization serves them all. A
/// Hessian that differs in any element, or other dampening options, is factored afresh.
class InverseFactorCache {
 public:
  at::Tensor factor(const at::Tensor& hessian, const DampeningOptions& options,
                    double* dampening_used);
  void clear();

 private:
  at::Tensor hessian_;
  at::Tensor factor_;
  DampeningOptions options_;
  double dampening_used_ = 0;
};

}  // namespace stunt::kernels
