// Every fast CPU kernel (src/kernels/cpu) against its oracle (src/kernels/reference), over a
// range of shapes from one element to model-sized, the way llama.cpp's test-backend-ops holds
// each backend to the CPU one. Each case draws seeded inputs, checks that the kernel accepts
// them, and bounds the kernel's error relative to the oracle's largest magnitude by a named
// budget. The per-kernel tests next to this one cover layouts, refusals and bit-exactness.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "stunt/kernels/causal_attention.h"
#include "stunt/kernels/column_square_sums.h"
#include "stunt/kernels/gated_silu.h"
#include "stunt/kernels/onednn_linear.h"
#include "stunt/kernels/reference.h"
#include "stunt/kernels/rms_norm.h"
#include "stunt/kernels/rotary_embedding.h"
#include "stunt/kernels/row_selection.h"

namespace stunt::kernels {
namespace {

// Error budgets, relative to the oracle's largest magnitude. Float32 arithmetic gives about
// 6e-8 per rounding; the budgets leave room for sums over thousands of terms in another order.
constexpr double kMaxRelErrAttention = 1e-5;
constexpr double kMaxRelErrSquareSums = 1e-6;
constexpr double kMaxRelErrElementwise = 1e-6;
constexpr double kMaxRelErrRmsNorm = 2e-6;
constexpr double kMaxRelErrLinear = 1e-5;

struct OracleCase {
  std::string name;
  /// Runs the kernel and its oracle on seeded inputs: {kernel result, oracle result}.
  std::function<std::pair<at::Tensor, at::Tensor>()> run;
  /// Relative error budget; 0: the results must be equal.
  double budget;
};

std::vector<OracleCase> cases() {
  std::vector<OracleCase> out;
  struct Attention {
    int64_t batch, heads, kv_heads, length, dim;
  };
  for (const Attention s :
       {Attention{1, 1, 1, 1, 8}, Attention{1, 4, 2, 17, 16}, Attention{2, 9, 3, 64, 64},
        Attention{1, 2, 2, 130, 32}, Attention{1, 3, 1, 257, 64}}) {
    out.push_back({"causal_attention " + std::to_string(s.batch) + "x" + std::to_string(s.heads) +
                       "/" + std::to_string(s.kv_heads) + "x" + std::to_string(s.length) + "x" +
                       std::to_string(s.dim),
                   [s] {
                     const at::Tensor q = at::randn({s.batch, s.heads, s.length, s.dim});
                     const at::Tensor k = at::randn({s.batch, s.kv_heads, s.length, s.dim});
                     const at::Tensor v = at::randn({s.batch, s.kv_heads, s.length, s.dim});
                     EXPECT_TRUE(causal_attention_supported(q, k, v));
                     const double scale = 1.0 / std::sqrt(static_cast<double>(s.dim));
                     return std::make_pair(causal_attention(q, k, v, scale),
                                           reference::causal_attention(q, k, v, scale));
                   },
                   kMaxRelErrAttention});
  }
  for (const auto& [rows, columns] : std::vector<std::pair<int64_t, int64_t>>{
           {1, 1}, {63, 5}, {64, 64}, {1000, 577}, {4097, 33}}) {
    out.push_back({"column_square_sums " + std::to_string(rows) + "x" + std::to_string(columns),
                   [rows = rows, columns = columns] {
                     const at::Tensor x = at::randn({rows, columns}) * 3;
                     return std::make_pair(column_square_sums(x), reference::column_square_sums(x));
                   },
                   kMaxRelErrSquareSums});
  }
  for (const std::vector<int64_t>& shape :
       std::vector<std::vector<int64_t>>{{1, 1}, {3, 7, 13}, {2, 100, 1536}, {1, 4097}}) {
    out.push_back({"gated_silu " + std::to_string(at::empty(shape).numel()),
                   [shape] {
                     const at::Tensor gate = at::randn(shape) * 4;
                     const at::Tensor up = at::randn(shape);
                     EXPECT_TRUE(gated_silu_supported(gate, up));
                     return std::make_pair(gated_silu(gate, up), reference::gated_silu(gate, up));
                   },
                   kMaxRelErrElementwise});
  }
  for (const std::vector<int64_t>& shape :
       std::vector<std::vector<int64_t>>{{1, 8}, {4, 17, 576}, {3, 2, 1000}, {1, 1, 4096}}) {
    out.push_back({"rms_norm " + std::to_string(at::empty(shape).numel()),
                   [shape] {
                     const at::Tensor x = at::randn(shape) * 5;
                     const at::Tensor weight = at::randn({shape.back()});
                     EXPECT_TRUE(rms_norm_supported(x, weight));
                     return std::make_pair(rms_norm(x, weight, 1e-5),
                                           reference::rms_norm(x, weight, 1e-5));
                   },
                   kMaxRelErrRmsNorm});
  }
  struct Rotary {
    int64_t batch, heads, length, dim, cos_batch;
  };
  for (const Rotary s : {Rotary{1, 1, 1, 2, 1}, Rotary{2, 9, 17, 64, 2}, Rotary{1, 3, 130, 128, 1},
                         Rotary{3, 2, 5, 6, 1}}) {
    out.push_back({"rotary_embedding " + std::to_string(s.heads) + "x" + std::to_string(s.length) +
                       "x" + std::to_string(s.dim),
                   [s] {
                     const at::Tensor x = at::randn({s.batch, s.heads, s.length, s.dim});
                     const at::Tensor angle = at::rand({s.cos_batch, s.length, s.dim}) * 6.3;
                     const at::Tensor cos = angle.cos(), sin = angle.sin();
                     EXPECT_TRUE(rotary_embedding_supported(x, cos, sin));
                     return std::make_pair(rotary_embedding(x, cos, sin),
                                           reference::rotary_embedding(x, cos, sin));
                   },
                   kMaxRelErrElementwise});
  }
  struct Selection {
    int64_t rows, columns, k;
  };
  for (const Selection s : {Selection{1, 1, 0}, Selection{1, 1, 1}, Selection{5, 8, 4},
                            Selection{64, 576, 288}, Selection{3, 1000, 999}}) {
    out.push_back({"lowest_per_row " + std::to_string(s.rows) + "x" + std::to_string(s.columns) +
                       " k=" + std::to_string(s.k),
                   [s] {
                     // Rounded scores tie often: ties must go to the lower column.
                     const at::Tensor scores = (at::randn({s.rows, s.columns}) * 8).round();
                     return std::make_pair(lowest_per_row(scores, s.k),
                                           reference::lowest_per_row(scores, s.k));
                   },
                   0.0});
  }
  struct Linear {
    std::vector<int64_t> input;
    int64_t out_features;
    bool bias;
  };
  for (const Linear& s : {Linear{{1, 8}, 16, false}, Linear{{3, 5, 576}, 1536, true},
                          Linear{{128, 576}, 576, false}, Linear{{2, 3, 4, 64}, 7, true}}) {
    out.push_back({"onednn_linear " + std::to_string(at::empty(s.input).numel()) + "->" +
                       std::to_string(s.out_features),
                   [s] {
                     const at::Tensor input = at::randn(s.input);
                     const at::Tensor weight = at::randn({s.out_features, s.input.back()}) * 0.1;
                     const at::Tensor bias = s.bias ? at::randn({s.out_features}) : at::Tensor();
                     EXPECT_TRUE(onednn_linear_supported(input, weight, bias));
                     return std::make_pair(onednn_linear(input, weight, bias),
                                           reference::linear(input, weight, bias));
                   },
                   kMaxRelErrLinear});
  }
  return out;
}

class KernelOracle : public ::testing::TestWithParam<size_t> {};

TEST_P(KernelOracle, MatchesWithinItsBudget) {
  const OracleCase c = cases()[GetParam()];
  SCOPED_TRACE(c.name);
  at::manual_seed(static_cast<uint64_t>(GetParam()) + 1);
  const auto [got, want] = c.run();
  ASSERT_EQ(got.sizes(), want.sizes());
  if (c.budget == 0) {
    EXPECT_TRUE(got.equal(want));
    return;
  }
  const at::Tensor wide = got.to(at::kDouble);
  ASSERT_TRUE(at::isfinite(wide).all().item<bool>());
  const double scale = std::max(want.abs().max().item<double>(), 1e-30);
  const double error = (wide - want).abs().max().item<double>() / scale;
  EXPECT_LE(error, c.budget);
  // The budget is not vacuous: a kernel off by a thousandth of the scale fails it.
  EXPECT_GT((wide + 1e-3 * scale - want).abs().max().item<double>() / scale, c.budget);
}

INSTANTIATE_TEST_SUITE_P(AllKernels, KernelOracle, ::testing::Range<size_t>(0, cases().size()),
                         [](const ::testing::TestParamInfo<size_t>& info) {
                           std::string name = cases()[info.param].name;
                           for (char& ch : name) {
                             if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           }
                           return name + "_" + std::to_string(info.param);
                         });

}  // namespace
}  // namespace stunt::kernels
