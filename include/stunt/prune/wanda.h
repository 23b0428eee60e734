#pragma once
/// Wanda (Sun et al. 2023): prunes the weights with the smallest |w| * ||x_j|| in each output
/// row, where ||x_j|| is the norm of input feature j over the calibration data. No
/// reconstruction: kept weights stay as they were.

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>

#include "stunt/prune/mask.h"

namespace stunt::prune {

/// sum over tokens of x_j², divided by the number of samples (batch rows), in float32, as
/// llm-compressor normalises it.
class InputNormAccumulator {
 public:
  explicit InputNormAccumulator(int64_t in_features);
  /// input: [..., in_features]; each batch row counts as one sample (2-D inputs as one).
  void add(const at::Tensor& input);
  /// add() in two steps, for layers that read the same input (q, k and v; gate and up): the
  /// per-feature sums of squares of `input` are computed once and added to each accumulator.
  static at::Tensor square_sums(const at::Tensor& input);
  void add_square_sums(const at::Tensor& sums, const at::Tensor& input);
  /// The per-feature mean squared norm [in]; throws when nothing was added.
  at::Tensor squared_norms() const;
  int64_t samples() const { return samples_; }

 private:
  at::Tensor sum_;
  int64_t samples_ = 0;
};

/// Prunes `weight` [out, in] by the score |w| * sqrt(squared_norms): unstructured, the
/// int(in * sparsity) lowest of every row (ties go to the lower column); N:M, the n lowest of
/// every m along each row.
PruneResult wanda_prune(const at::Tensor& weight, const at::Tensor& squared_norms, double sparsity,
                        const MaskStructure& structure, const std::string& layer);

}  // namespace stunt::prune
