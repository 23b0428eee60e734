#include "stunt/prune/wanda.h"

#include <ATen/ATen.h>

#include "stunt/core/error.h"

namespace stunt::prune {

InputNormAccumulator::InputNormAccumulator(int64_t in_features)
    : sum_(at::zeros({in_features}, at::kFloat)) {}

void InputNormAccumulator::add(const at::Tensor& input) {
  STUNT_CHECK(input.size(-1) == sum_.size(0), "input norms of ", sum_.size(0),
              " features received inputs of width ", input.size(-1));
  const at::Tensor tokens = input.reshape({-1, input.size(-1)}).to(at::kFloat);
  sum_.add_(tokens.square().sum(0));
  samples_ += input.dim() >= 3 ? input.size(0) : 1;
}

at::Tensor InputNormAccumulator::squared_norms() const {
  STUNT_CHECK(samples_ > 0, "input norms have seen no inputs; did calibration reach this layer?");
  return sum_ / static_cast<double>(samples_);
}

PruneResult wanda_prune(const at::Tensor& weight, const at::Tensor& squared_norms, double sparsity,
                        const MaskStructure& structure, const std::string& layer) {
  STUNT_CHECK(
      weight.dim() == 2 && squared_norms.dim() == 1 && squared_norms.size(0) == weight.size(1),
      layer, ": Wanda needs a [out, in] weight and [in] input norms, got ", weight.sizes(), " and ",
      squared_norms.sizes());
  check_prunable(structure, sparsity, weight.size(1), layer, layer);
  STUNT_CHECK_AS(ValueError, at::isfinite(weight).all().item<bool>(), layer,
                 ": the weight holds NaN or infinite values; fix the checkpoint before pruning");
  const at::Tensor score = weight.to(at::kFloat).abs() * squared_norms.sqrt().unsqueeze(0);
  if (!structure.unstructured()) return with_pruned(weight, n_of_m_lowest(score, structure));
  const int64_t per_row = static_cast<int64_t>(static_cast<double>(weight.size(1)) * sparsity);
  at::Tensor pruned = at::zeros(weight.sizes(), at::kBool);
  if (per_row > 0) {
    const at::Tensor order = std::get<1>(score.sort(std::optional<bool>(true), /*dim=*/1));
    pruned.scatter_(1, order.narrow(1, 0, per_row), true);
  }
  return with_pruned(weight, pruned);
}

}  // namespace stunt::prune
