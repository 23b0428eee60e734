#include "stunt/prune/wanda.h"

#include <ATen/ATen.h>

#include "stunt/core/error.h"
#include "stunt/kernels/column_square_sums.h"
#include "stunt/kernels/row_selection.h"

namespace stunt::prune {

InputNormAccumulator::InputNormAccumulator(int64_t in_features)
    : sum_(at::zeros({in_features}, at::kFloat)) {}

void InputNormAccumulator::add(const at::Tensor& input) {
  add_square_sums(square_sums(input), input);
}

at::Tensor InputNormAccumulator::square_sums(const at::Tensor& input) {
  return kernels::column_square_sums(input.reshape({-1, input.size(-1)}).to(at::kFloat));
}

void InputNormAccumulator::add_square_sums(const at::Tensor& sums, const at::Tensor& input) {
  STUNT_CHECK(input.size(-1) == sum_.size(0) && sums.sizes() == sum_.sizes(), "input norms of ",
              sum_.size(0), " features received inputs of width ", input.size(-1));
  sum_.add_(sums);
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
  // Overflowing input norms can make scores infinite or NaN; the selection kernel wants finite
  // scores, so those rows go through a sort (NaN last, as llm-compressor's sort puts it).
  if (!at::isfinite(score).all().item<bool>()) {
    at::Tensor pruned = at::zeros(weight.sizes(), at::kBool);
    if (per_row > 0) {
      const at::Tensor order = std::get<1>(score.sort(std::optional<bool>(true), /*dim=*/1));
      pruned.scatter_(1, order.narrow(1, 0, per_row), true);
    }
    return with_pruned(weight, pruned);
  }
  return with_pruned(weight, kernels::lowest_per_row(score, per_row));
}

}  // namespace stunt::prune
