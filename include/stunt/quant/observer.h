#pragma once
/// Observers turn observed tensors into scales and zero points. Names follow llm-compressor:
///   memoryless_minmax  min and max of the latest tensor (the default for weights)
///   static_minmax      running min and max over every tensor seen
///   minmax             moving average of each tensor's min and max (averaging_constant)
///   mse / memoryless_mse   min and max shrunk by the factor that minimises the quantization
///                      error |x - fake_quant(x)|^norm (grid search, early stop after patience)
///   percentile         the given percentiles instead of the extremes (outliers clipped),
///                      moving-averaged like minmax
/// Statistics are per scale element: one per tensor, per output channel, per group, or per
/// token, as the strategy lays scales out (qparams.h).

#include <ATen/core/Tensor.h>

#include <memory>
#include <string>
#include <vector>

#include "stunt/quant/qparams.h"
#include "stunt/quant/quant_args.h"

namespace stunt::quant {

/// What an observer watches: a [out, in] weight, or activations [..., hidden].
enum class Observed { Weight, Activation };

class Observer {
 public:
  virtual ~Observer() = default;
  /// Folds `x` into the statistics and returns the qparams they now give.
  QParams update(const at::Tensor& x);
  /// The qparams of the statistics so far; throws when nothing was observed.
  QParams qparams() const;
  bool has_data() const { return min_.defined(); }
  /// The statistics so far and the scale layout, for training checkpoints.
  struct Statistics {
    at::Tensor min;
    at::Tensor max;
    std::vector<int64_t> scale_shape;
  };
  Statistics statistics() const { return {min_, max_, scale_shape_}; }
  /// Continues from statistics() of an observer of the same kind.
  void restore(Statistics statistics) {
    min_ = std::move(statistics.min);
    max_ = std::move(statistics.max);
    scale_shape_ = std::move(statistics.scale_shape);
  }
  const QuantArgs& args() const { return args_; }

  /// The observer `name` (see above) with its observer_kwargs. Unknown names and kwargs are
  /// ValueErrors listing the known ones.
  static std::unique_ptr<Observer> create(const std::string& name, const QuantArgs& args,
                                          Observed observed);
  /// Every name create() accepts.
  static const std::vector<std::string>& names();

 protected:
  Observer(QuantArgs args, Observed observed) : args_(std::move(args)), observed_(observed) {}
  /// Per-row statistics of `rows` [scale elements, values each]: the (min, max) to use.
  virtual std::pair<at::Tensor, at::Tensor> row_min_max(const at::Tensor& rows) = 0;
  /// How the running statistics combine with a new tensor's.
  virtual void fold(const at::Tensor& min, const at::Tensor& max);

  QuantArgs args_;
  Observed observed_;
  at::Tensor min_;
  at::Tensor max_;
  std::vector<int64_t> scale_shape_;
};

/// `x` laid out as [scale elements, values each] for `args` (with the scale's shape).
at::Tensor reduction_rows(const at::Tensor& x, const QuantArgs& args, Observed observed,
                          std::vector<int64_t>* scale_shape);

}  // namespace stunt::quant
