#include "stunt/quant/observer.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <set>

#include "stunt/core/error.h"
#include "stunt/core/strings.h"

namespace stunt::quant {
namespace {

double kwarg(const QuantArgs& args, const char* key, double fallback) {
  const auto& kw = args.observer_kwargs;
  if (!kw.contains(key)) return fallback;
  STUNT_CHECK(kw[key].is_number(), "observer_kwargs.", key, ": expected a number, found ",
              kw[key].dump());
  return kw[key].get<double>();
}

void check_kwargs(const QuantArgs& args, const std::string& name,
                  const std::set<std::string>& known) {
  for (auto it = args.observer_kwargs.begin(); it != args.observer_kwargs.end(); ++it) {
    if (known.count(it.key()) == 0) {
      std::string list = known.empty() ? "none" : "";
      for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
      throw ValueError(str("observer_kwargs.", it.key(), ": observer '", name,
                           "' has no such option; it takes: ", list));
    }
  }
}

class MinMaxObserver final : public Observer {
 public:
  enum class Memory { None, Running, MovingAverage };
  MinMaxObserver(QuantArgs args, Observed observed, Memory memory)
      : Observer(std::move(args), observed), memory_(memory) {
    averaging_constant_ = kwarg(args_, "averaging_constant", 0.01);
    STUNT_CHECK(averaging_constant_ > 0 && averaging_constant_ <= 1,
                "observer_kwargs.averaging_constant: expected a value in (0, 1], got ",
                averaging_constant_);
  }

 protected:
  std::pair<at::Tensor, at::Tensor> row_min_max(const at::Tensor& rows) override {
    return {std::get<0>(rows.min(1)), std::get<0>(rows.max(1))};
  }
  void fold(const at::Tensor& min, const at::Tensor& max) override {
    if (!min_.defined() || memory_ == Memory::None) {
      Observer::fold(min, max);
    } else if (memory_ == Memory::Running) {
      min_ = at::minimum(min_, min);
      max_ = at::maximum(max_, max);
    } else {
      min_ = min_ + averaging_constant_ * (min - min_);
      max_ = max_ + averaging_constant_ * (max - max_);
    }
  }

 private:
  Memory memory_;
  double averaging_constant_ = 0.01;
};

class PercentileObserver final : public Observer {
 public:
  PercentileObserver(QuantArgs args, Observed observed) : Observer(std::move(args), observed) {
    percentile_ = kwarg(args_, "percentile", 99.99);
    averaging_constant_ = kwarg(args_, "averaging_constant", 0.01);
    STUNT_CHECK(percentile_ > 50 && percentile_ <= 100,
                "observer_kwargs.percentile: expected a value in (50, 100], got ", percentile_);
  }

 protected:
  std::pair<at::Tensor, at::Tensor> row_min_max(const at::Tensor& rows) override {
    const int64_t n = rows.size(1);
    // kthvalue rather than quantile: quantile refuses inputs above 16M elements.
    const int64_t k_high = std::clamp<int64_t>(
        static_cast<int64_t>(std::ceil(percentile_ / 100.0 * static_cast<double>(n))), 1, n);
    const int64_t k_low = std::clamp<int64_t>(n + 1 - k_high, 1, n);
    at::Tensor sorted_input = rows.to(at::kFloat);
    return {std::get<0>(sorted_input.kthvalue(k_low, 1)).to(rows.scalar_type()),
            std::get<0>(sorted_input.kthvalue(k_high, 1)).to(rows.scalar_type())};
  }
  void fold(const at::Tensor& min, const at::Tensor& max) override {
    if (!min_.defined()) return Observer::fold(min, max);
    min_ = min_ + averaging_constant_ * (min - min_);
    max_ = max_ + averaging_constant_ * (max - max_);
  }

 private:
  double percentile_ = 99.99;
  double averaging_constant_ = 0.01;
};

class MseObserver final : public Observer {
 public:
  MseObserver(QuantArgs args, Observed observed, bool memoryless)
      : Observer(std::move(args), observed), memoryless_(memoryless) {
    maxshrink_ = kwarg(args_, "maxshrink", 0.20);
    patience_ = static_cast<int>(kwarg(args_, "patience", 5));
    grid_ = kwarg(args_, "grid", 100.0);
    norm_ = kwarg(args_, "norm", 2.4);
    averaging_constant_ = kwarg(args_, "averaging_constant", 0.01);
    STUNT_CHECK(maxshrink_ > 0 && maxshrink_ < 1,
                "observer_kwargs.maxshrink: expected a value in (0, 1), got ", maxshrink_);
    STUNT_CHECK(grid_ >= 1, "observer_kwargs.grid: expected at least 1, got ", grid_);
    STUNT_CHECK(patience_ >= 1, "observer_kwargs.patience: expected at least 1, got ", patience_);
  }

 protected:
  std::pair<at::Tensor, at::Tensor> row_min_max(const at::Tensor& rows) override {
    const at::Tensor min = std::get<0>(rows.min(1));
    const at::Tensor max = std::get<0>(rows.max(1));
    const kernels::QuantRange range = quant_range(args_);
    at::Tensor best_error = at::full_like(min, std::numeric_limits<float>::infinity());
    at::Tensor best_min = min.clone();
    at::Tensor best_max = max.clone();
    int stale = 0;
    for (int i = 0; i < static_cast<int>(maxshrink_ * grid_); ++i) {
      const double p = 1.0 - i / grid_;
      const at::Tensor shrunk_min = p * min;
      const at::Tensor shrunk_max = p * max;
      QParams qp = compute_qparams(shrunk_min, shrunk_max, args_);
      const at::Tensor zp = args_.symmetric ? at::Tensor() : qp.zero_point.unsqueeze(1);
      const at::Tensor q = kernels::fake_quantize(rows, qp.scale.unsqueeze(1), zp, range);
      const at::Tensor error = (q - rows).abs_().pow_(norm_).sum(1);
      const at::Tensor better = error < best_error;
      if (better.any().item<bool>()) {
        stale = 0;
        best_error = at::where(better, error, best_error);
        best_min = at::where(better, shrunk_min, best_min);
        best_max = at::where(better, shrunk_max, best_max);
      } else if (++stale >= patience_) {
        break;
      }
    }
    return {best_min, best_max};
  }
  void fold(const at::Tensor& min, const at::Tensor& max) override {
    if (!min_.defined() || memoryless_) return Observer::fold(min, max);
    min_ = min_ + averaging_constant_ * (min - min_);
    max_ = max_ + averaging_constant_ * (max - max_);
  }

 private:
  bool memoryless_;
  double maxshrink_, grid_, norm_, averaging_constant_;
  int patience_;
};

}  // namespace

at::Tensor reduction_rows(const at::Tensor& x, const QuantArgs& args, Observed observed,
                          std::vector<int64_t>* scale_shape) {
  const QuantStrategy strategy = args.resolved_strategy();
  if (observed == Observed::Weight) {
    STUNT_CHECK(x.dim() == 2, "expected a [out, in] weight, got ", x.sizes());
    switch (strategy) {
      case QuantStrategy::Tensor:
        *scale_shape = {1};
        return x.reshape({1, -1});
      case QuantStrategy::Channel:
        *scale_shape = {x.size(0), 1};
        return x;
      case QuantStrategy::Group: {
        at::Tensor groups = kernels::group_view(x, *args.group_size);
        *scale_shape = {x.size(0), groups.size(1)};
        return groups.reshape({-1, *args.group_size});
      }
      default:
        throw ValueError(str("weights cannot use strategy '", to_string(strategy),
                             "'; use tensor, channel or group"));
    }
  }
  at::Tensor rows = x.reshape({-1, x.size(-1)});
  if (strategy == QuantStrategy::Token) {
    *scale_shape = {rows.size(0), 1};
    return rows;
  }
  STUNT_CHECK(strategy == QuantStrategy::Tensor, "static activation quantization supports ",
              "strategy tensor, not '", to_string(strategy),
              "' (use dynamic: true with strategy token for per-token scales)");
  *scale_shape = {1};
  return rows.reshape({1, -1});
}

void Observer::fold(const at::Tensor& min, const at::Tensor& max) {
  min_ = min;
  max_ = max;
}

QParams Observer::update(const at::Tensor& x) {
  std::vector<int64_t> shape;
  const at::Tensor rows = reduction_rows(x.detach(), args_, observed_, &shape);
  if (!scale_shape_.empty() && shape != scale_shape_) {
    // Per-token statistics change shape with every batch: nothing to accumulate.
    min_ = at::Tensor();
    max_ = at::Tensor();
  }
  scale_shape_ = shape;
  auto [min, max] = row_min_max(rows);
  fold(min, max);
  return qparams();
}

QParams Observer::qparams() const {
  STUNT_CHECK(min_.defined(), "the observer has seen no data yet");
  QParams qp = compute_qparams(min_, max_, args_);
  qp.scale = qp.scale.reshape(scale_shape_);
  qp.zero_point = qp.zero_point.reshape(scale_shape_);
  return qp;
}

const std::vector<std::string>& Observer::names() {
  static const std::vector<std::string> all = {
      "memoryless_minmax", "static_minmax", "minmax", "mse", "memoryless_mse", "percentile"};
  return all;
}

std::unique_ptr<Observer> Observer::create(const std::string& name, const QuantArgs& args,
                                           Observed observed) {
  using Memory = MinMaxObserver::Memory;
  const std::string n = to_lower(name);
  if (n == "memoryless_minmax" || n == "memoryless") {
    check_kwargs(args, n, {});
    return std::unique_ptr<Observer>(new MinMaxObserver(args, observed, Memory::None));
  }
  if (n == "static_minmax") {
    check_kwargs(args, n, {});
    return std::unique_ptr<Observer>(new MinMaxObserver(args, observed, Memory::Running));
  }
  if (n == "minmax") {
    check_kwargs(args, n, {"averaging_constant"});
    return std::unique_ptr<Observer>(new MinMaxObserver(args, observed, Memory::MovingAverage));
  }
  if (n == "mse" || n == "memoryless_mse") {
    check_kwargs(args, n, {"maxshrink", "patience", "grid", "norm", "averaging_constant"});
    return std::unique_ptr<Observer>(new MseObserver(args, observed, n == "memoryless_mse"));
  }
  if (n == "percentile") {
    check_kwargs(args, n, {"percentile", "averaging_constant"});
    return std::unique_ptr<Observer>(new PercentileObserver(args, observed));
  }
  throw ValueError(
      str("observer '", name, "' is not known; known observers: ", join(names(), ", ")));
}

}  // namespace stunt::quant
