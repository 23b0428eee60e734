#include "stunt/prune/magnitude.h"

#include <ATen/ATen.h>

#include "stunt/core/error.h"

namespace stunt::prune {

PruneResult magnitude_prune(const at::Tensor& weight, double sparsity,
                            const MaskStructure& structure, const std::string& layer) {
  STUNT_CHECK(weight.dim() == 2, layer, ": magnitude pruning needs a [out, in] weight, got ",
              weight.sizes());
  check_prunable(structure, sparsity, weight.size(1), layer, layer);
  STUNT_CHECK_AS(ValueError, at::isfinite(weight).all().item<bool>(), layer,
                 ": the weight holds NaN or infinite values; fix the checkpoint before pruning");
  return with_pruned(weight, magnitude_pruned(weight, sparsity, structure));
}

}  // namespace stunt::prune
