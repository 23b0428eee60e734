#include "stunt/prune/mask.h"

#include <ATen/ATen.h>

#include <cmath>

#include "stunt/core/error.h"
#include "stunt/core/strings.h"
#include "stunt/kernels/sparsity_pattern.h"

namespace stunt::prune {

std::string MaskStructure::to_string() const {
  return unstructured() ? std::string("unstructured") : str(n, ":", m);
}

MaskStructure parse_mask_structure(const std::string& text, const std::string& where) {
  if (text == "unstructured" || text == "0:0") return {};
  const auto colon = text.find(':');
  MaskStructure s;
  bool parsed = colon != std::string::npos && colon > 0 && colon + 1 < text.size();
  if (parsed) {
    try {
      size_t used_n = 0, used_m = 0;
      s.n = std::stoll(text.substr(0, colon), &used_n);
      s.m = std::stoll(text.substr(colon + 1), &used_m);
      parsed = used_n == colon && used_m == text.size() - colon - 1;
    } catch (const std::exception&) {
      parsed = false;
    }
  }
  STUNT_CHECK_AS(ValueError, parsed && s.n > 0 && s.m > s.n, where, ": mask_structure '", text,
                 "' is not \"unstructured\" or N:M with 0 < N < M (N of every M weights along "
                 "the input dimension are pruned, e.g. \"2:4\")");
  return s;
}

void check_prunable(const MaskStructure& structure, double sparsity, int64_t in_features,
                    const std::string& layer, const std::string& where) {
  STUNT_CHECK_AS(ValueError, std::isfinite(sparsity) && sparsity >= 0 && sparsity < 1, where,
                 ": sparsity ", sparsity, " for ", layer,
                 " is outside [0, 1); give the fraction of weights to prune, e.g. 0.5");
  STUNT_CHECK_AS(ValueError, structure.unstructured() || in_features % structure.m == 0, where,
                 ": mask_structure ", structure.to_string(),
                 " needs in_features to be a multiple "
                 "of ",
                 structure.m, ", but ", layer, " takes ", in_features,
                 "; ignore this layer or use an unstructured mask");
}

at::Tensor n_of_m_lowest(const at::Tensor& scores, const MaskStructure& structure) {
  STUNT_CHECK(!structure.unstructured() && scores.dim() == 2 && scores.size(1) % structure.m == 0,
              "n_of_m_lowest needs [rows, k*m] scores and an N:M structure, got ", scores.sizes(),
              " and ", structure.to_string());
  const at::Tensor groups = scores.reshape({-1, structure.m});
  // A stable ascending sort: ties go to the lower column.
  const at::Tensor order = std::get<1>(groups.sort(std::optional<bool>(true), /*dim=*/1));
  at::Tensor pruned = at::zeros(groups.sizes(), at::kBool);
  pruned.scatter_(1, order.narrow(1, 0, structure.n), true);
  return pruned.reshape(scores.sizes());
}

at::Tensor magnitude_pruned(const at::Tensor& weight, double sparsity,
                            const MaskStructure& structure) {
  const at::Tensor magnitude = weight.abs().to(at::kFloat);
  if (!structure.unstructured()) return n_of_m_lowest(magnitude, structure);
  const int64_t count = static_cast<int64_t>(static_cast<double>(weight.numel()) * sparsity);
  at::Tensor pruned = at::zeros({weight.numel()}, at::kBool);
  if (count > 0) {
    const at::Tensor order =
        std::get<1>(magnitude.flatten().sort(std::optional<bool>(true), /*dim=*/0));
    pruned.index_fill_(0, order.narrow(0, 0, count), true);
  }
  return pruned.reshape(weight.sizes());
}

bool satisfies(const at::Tensor& weight, const MaskStructure& structure) {
  if (structure.unstructured()) return true;
  const int64_t most = kernels::max_nonzeros_per_group(weight, structure.m);
  return most < 0 || most <= structure.m - structure.n;
}

MaskStructure detect_structure(const at::Tensor& weight) {
  const std::string pattern = kernels::n_of_m_pattern(weight);
  return pattern.empty() ? MaskStructure{} : parse_mask_structure(pattern, "detect_structure");
}

PruneResult with_pruned(const at::Tensor& weight, at::Tensor pruned) {
  PruneResult result;
  result.weight = weight.masked_fill(pruned, 0);
  result.pruned = std::move(pruned);
  return result;
}

double sparsity_of(const at::Tensor& weight) {
  if (weight.numel() == 0) return 0.0;
  return (weight == 0).sum().item<double>() / static_cast<double>(weight.numel());
}

}  // namespace stunt::prune
