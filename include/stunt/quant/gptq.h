#pragma once
/// GPTQ (Frantar et al. 2022): quantizes a weight column by column and spreads each column's
/// rounding error over the columns not yet quantized, weighted by the inverse Hessian of the
/// layer's inputs (the Cholesky formulation of the paper's section 3.4, in blocks).

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>

#include "stunt/kernels/hessian.h"
#include "stunt/quant/qparams.h"
#include "stunt/quant/quant_args.h"

namespace stunt::quant {

/// GPTQ and SparseGPT share the Hessian accumulator (kernels/hessian.h).
using kernels::HessianAccumulator;

struct GptqOptions {
  int64_t block_size = 128;
  /// Added to the Hessian's diagonal: dampening_frac * mean(diag(H)).
  double dampening_frac = 0.01;
  /// Multiplied into the dampening each time a Cholesky factorization fails.
  double dampening_growth = 10.0;
  int max_dampening_retries = 6;
  /// Names the layer in warnings and errors.
  std::string layer;
  /// Weights held at zero (bool [out, in], true = pruned), or undefined: a sparsity mask from an
  /// earlier pruning step survives quantization, its error spread like a rounding error.
  at::Tensor pruned;  /// Shares the inverse Hessian factor with the layers before that read the
                      /// same inputs, or
  /// null: each layer factors its own.
  kernels::InverseFactorCache* factor_cache = nullptr;
};

struct GptqResult {
  /// The quantized weight, dequantized, in the input weight's dtype and column order.
  at::Tensor weight;
  /// Integer values (in the weight's dtype), as they will be packed.
  at::Tensor q;
  QParams qparams;
  /// sum((w - q)^2 / d^2) / 2 over the layer, the loss GPTQ minimises.
  double loss = 0;
  /// The dampening fraction finally used (larger than asked when H was singular).
  double dampening_used = 0;
};

/// Quantizes `weight` [out, in] with `args` (weights of a scheme: tensor, channel or group
/// strategy; actorder weight quantizes the columns in order of input energy) given the Hessian [in,
/// in] of its inputs. `observer` names the observer for the scales (default memoryless_minmax). The
/// Hessian is consumed (modified in place).
GptqResult gptq_quantize(const at::Tensor& weight, at::Tensor hessian, const QuantArgs& args,
                         const GptqOptions& options);

}  // namespace stunt::quant
