#include "stunt/quant/awq.h"

#include <ATen/ATen.h>

#include <cmath>

#include "stunt/core/error.h"
#include "stunt/quant/observer.h"
#include "stunt/quant/qparams.h"

namespace stunt::quant {

std::vector<AwqCandidate> awq_grid(int n_grid, const std::string& duo_scaling) {
  std::vector<AwqCandidate> grid;
  if (duo_scaling == "both") {
    const int n = n_grid / 2;
    for (int i = 0; i < n; ++i) {
      for (bool duo : {false, true}) {
        grid.push_back({n > 1 ? static_cast<double>(i) / (n - 1) : 0.0, duo});
      }
    }
  } else if (duo_scaling == "true") {
    grid.push_back({0.0, false});
    for (int i = 0; i < n_grid - 1; ++i) {
      grid.push_back({n_grid > 2 ? static_cast<double>(i) / (n_grid - 2) : 0.0, true});
    }
  } else {
    STUNT_ASSERT(duo_scaling == "false", "duo_scaling ", duo_scaling);
    for (int i = 0; i < n_grid; ++i) {
      grid.push_back({n_grid > 1 ? static_cast<double>(i) / (n_grid - 1) : 0.0, false});
    }
  }
  return grid;
}

at::Tensor awq_weight_mean(const std::vector<at::Tensor>& weights,
                           const std::vector<const QuantArgs*>& args) {
  STUNT_ASSERT(!weights.empty() && weights.size() == args.size());
  at::Tensor sum = at::zeros({weights.front().size(1)}, at::kDouble);
  int64_t rows = 0;
  for (size_t i = 0; i < weights.size(); ++i) {
    if (args[i] == nullptr) continue;
    const at::Tensor& w = weights[i];
    const QuantStrategy strategy = args[i]->resolved_strategy();
    const int64_t span = strategy == QuantStrategy::Channel ? w.size(1)
                         : strategy == QuantStrategy::Group ? *args[i]->group_size
                                                            : w.numel();
    const at::Tensor grouped = w.abs().reshape({-1, span});
    const at::Tensor normalized =
        (grouped / (std::get<0>(grouped.max(1, true)) + 1e-6)).reshape(w.sizes());
    sum += normalized.sum(0).to(at::kDouble);
    rows += w.size(0);
  }
  STUNT_ASSERT(rows > 0, "no quantized balance weight");
  return sum / static_cast<double>(rows);
}

at::Tensor awq_scales(const at::Tensor& x_mean, const at::Tensor& w_mean,
                      const AwqCandidate& candidate, c10::ScalarType dtype) {
  // llm-compressor's floors: 1e-4 under w_mean's power and under the scales themselves.
  at::Tensor s = candidate.duo ? at::clamp_min(x_mean.to(at::kDouble).pow(candidate.ratio) /
                                                   (w_mean.pow(1 - candidate.ratio) + 1e-4),
                                               1e-4)
                               : at::clamp_min(x_mean.pow(candidate.ratio), 1e-4);
  s = s / std::sqrt((s.max() * s.min()).item<double>());
  return at::where(at::isfinite(s), s, at::ones_like(s)).to(dtype);
}

at::Tensor awq_fake_quantized(const at::Tensor& weight, const at::Tensor& scales,
                              const QuantArgs& args) {
  const at::Tensor scaled = weight * scales.unsqueeze(0);
  const QParams qp = Observer::create("memoryless_minmax", args, Observed::Weight)->update(scaled);
  return fake_quantize_weight(scaled, qp, args) / scales.unsqueeze(0);
}

}  // namespace stunt::quant
