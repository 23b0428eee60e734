#include "stunt/prune/sparsegpt.h"

#include <ATen/ATen.h>

#include <algorithm>

#include "stunt/core/error.h"
#include "stunt/kernels/hessian.h"
#include "stunt/kernels/sparsegpt_block.h"

namespace stunt::prune {
namespace {

/// The block's unstructured choice: every weight whose score is at or below the
/// int(numel * sparsity)-th smallest (llm-compressor's threshold, ties included). With a mask
/// to preserve, its zeros score 0 and so stay pruned.
at::Tensor block_unstructured(const at::Tensor& block, const at::Tensor& diagonal,
                              const at::Tensor& preserved, double sparsity) {
  const int64_t target = static_cast<int64_t>(static_cast<double>(block.numel()) * sparsity);
  if (preserved.defined() && preserved.sum().item<int64_t>() >= target) return preserved.clone();
  at::Tensor score = block.square() / diagonal.square().unsqueeze(0);
  if (preserved.defined()) score.masked_fill_(preserved, 0.0);
  const at::Tensor threshold = std::get<0>(score.flatten().kthvalue(target + 1));
  return score.le(threshold);
}

}  // namespace

PruneResult sparsegpt_prune(const at::Tensor& weight, at::Tensor hessian,
                            const SparseGptOptions& options) {
  STUNT_CHECK(weight.dim() == 2, options.layer, ": SparseGPT needs a [out, in] weight, got ",
              weight.sizes());
  const int64_t rows = weight.size(0);
  const int64_t columns = weight.size(1);
  STUNT_CHECK(hessian.dim() == 2 && hessian.size(0) == columns && hessian.size(1) == columns,
              options.layer, ": the Hessian is ", hessian.sizes(), ", expected [", columns, ", ",
              columns, "]");
  check_prunable(options.structure, options.sparsity, columns, options.layer, options.layer);
  const bool n_of_m = !options.structure.unstructured();
  // Blocks hold whole N:M groups.
  int64_t block_size = std::max<int64_t>(options.block_size, 1);
  if (n_of_m && block_size % options.structure.m != 0) {
    block_size = std::max<int64_t>(block_size / options.structure.m, 1) * options.structure.m;
  }
  const c10::ScalarType compute = hessian.scalar_type();
  at::Tensor W = weight.to(compute).clone();
  STUNT_CHECK_AS(ValueError, at::isfinite(W).all().item<bool>(), options.layer,
                 ": the weight holds NaN or infinite values; fix the checkpoint before pruning");
  const at::Tensor dead = kernels::fix_dead_inputs(hessian);
  if (dead.defined()) W.masked_fill_(dead.unsqueeze(0), 0.0);
  at::Tensor preserved;
  if (options.preserve_mask) {
    preserved = W == 0;
    const double existing = preserved.to(at::kDouble).mean().item<double>();
    STUNT_CHECK_AS(ValueError, n_of_m || existing <= options.sparsity, options.layer,
                   ": preserve_sparsity_mask keeps ", existing,
                   " of the weights zero, more than the sparsity ", options.sparsity,
                   "; raise sparsity or turn preserve_sparsity_mask off");
  }
  PruneResult result;
  kernels::DampeningOptions dampening;
  dampening.frac = options.dampening_frac;
  dampening.layer = options.layer;
  const at::Tensor Hinv =
      options.factor_cache != nullptr
          ? options.factor_cache->factor(hessian, dampening, &result.dampening_used)
          : kernels::inverse_hessian_factor(hessian, dampening, &result.dampening_used);

  at::Tensor pruned = at::zeros({rows, columns}, at::kBool);
  at::Tensor losses = at::zeros({rows}, W.options());
  for (int64_t i1 = 0; i1 < columns; i1 += block_size) {
    const int64_t count = std::min(block_size, columns - i1);
    at::Tensor W1 = W.narrow(1, i1, count).contiguous();
    const at::Tensor Hinv1 = Hinv.narrow(0, i1, count).narrow(1, i1, count).contiguous();
    const at::Tensor kept_zero =
        preserved.defined() ? preserved.narrow(1, i1, count).contiguous() : at::Tensor();
    at::Tensor pruned1 =
        n_of_m ? (kept_zero.defined() ? kept_zero.clone() : at::zeros({rows, count}, at::kBool))
               : block_unstructured(W1, Hinv1.diagonal(), kept_zero, options.sparsity);
    pruned1 = pruned1.contiguous();
    at::Tensor Err1 = at::empty_like(W1);
    kernels::sparsegpt_prune_block(W1, Hinv1, pruned1, n_of_m ? options.structure.n : 0,
                                   n_of_m ? options.structure.m : 0, Err1, losses);
    W.narrow(1, i1, count).copy_(W1);
    pruned.narrow(1, i1, count).copy_(pruned1);
    if (i1 + count < columns) {
      at::Tensor update =
          at::matmul(Err1, Hinv.narrow(0, i1, count).narrow(1, i1 + count, columns - i1 - count));
      // Preserved zeros stay zero (llm-compressor masks only this cross-block update).
      if (preserved.defined()) {
        update.masked_fill_(preserved.narrow(1, i1 + count, columns - i1 - count), 0.0);
      }
      W.narrow(1, i1 + count, columns - i1 - count).sub_(update);
    }
  }
  result.loss = losses.sum().item<double>();
  result.weight = W.to(weight.scalar_type());
  result.pruned = pruned;
  STUNT_ASSERT(at::isfinite(result.weight).all().item<bool>(), options.layer,
               ": SparseGPT produced non-finite weights");
  return result;
}

}  // namespace stunt::prune
