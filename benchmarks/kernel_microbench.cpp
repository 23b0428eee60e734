// The CPU kernels of calibration against the ATen calls they replace, on SmolLM2-135M's shapes
// (8 windows of 512 tokens joined into one forward; 9 query heads reading 3 key/value heads of
// 64; width 576, MLP 1536):
//
//   build/dev/benchmarks/stunt_microbench --benchmark_filter='Attention|Selection|SquareSums'
#include <ATen/ATen.h>
#include <benchmark/benchmark.h>

#include "stunt/kernels/causal_attention.h"
#include "stunt/kernels/column_square_sums.h"
#include "stunt/kernels/row_selection.h"

namespace {

struct Heads {
  at::Tensor q, k, v;
};

// As a model hands them over: transposed views of [batch, length, heads, dim] projections.
Heads smollm2_heads() {
  at::manual_seed(0);
  return {at::randn({8, 512, 9, 64}).transpose(1, 2), at::randn({8, 512, 3, 64}).transpose(1, 2),
          at::randn({8, 512, 3, 64}).transpose(1, 2)};
}

void BM_CausalAttentionStunt(benchmark::State& state) {
  const Heads h = smollm2_heads();
  for (auto _ : state) {
    benchmark::DoNotOptimize(stunt::kernels::causal_attention(h.q, h.k, h.v, 0.125));
  }
}
BENCHMARK(BM_CausalAttentionStunt)->Unit(benchmark::kMillisecond);

void BM_CausalAttentionAten(benchmark::State& state) {
  const Heads h = smollm2_heads();
  for (auto _ : state) {
    benchmark::DoNotOptimize(at::scaled_dot_product_attention(
        h.q, h.k, h.v, std::nullopt, 0.0, /*is_causal=*/true, 0.125, /*enable_gqa=*/true));
  }
}
BENCHMARK(BM_CausalAttentionAten)->Unit(benchmark::kMillisecond);

// Wanda's choice of the lowest half of every row, on a gate_proj-shaped score matrix.
void BM_LowestHalfPerRowSelection(benchmark::State& state) {
  at::manual_seed(0);
  const at::Tensor scores = at::randn({1536, 576}).abs() * at::rand({576});
  for (auto _ : state) benchmark::DoNotOptimize(stunt::kernels::lowest_per_row(scores, 288));
}
BENCHMARK(BM_LowestHalfPerRowSelection)->Unit(benchmark::kMillisecond);

void BM_LowestHalfPerRowSelectionBySort(benchmark::State& state) {
  at::manual_seed(0);
  const at::Tensor scores = at::randn({1536, 576}).abs() * at::rand({576});
  for (auto _ : state) {
    const at::Tensor order = std::get<1>(scores.sort(std::optional<bool>(true), 1));
    benchmark::DoNotOptimize(
        at::zeros(scores.sizes(), at::kBool).scatter_(1, order.narrow(1, 0, 288), true));
  }
}
BENCHMARK(BM_LowestHalfPerRowSelectionBySort)->Unit(benchmark::kMillisecond);

// Wanda's input norms of down_proj over one joined forward.
void BM_ColumnSquareSums(benchmark::State& state) {
  at::manual_seed(0);
  const at::Tensor x = at::randn({4096, 1536});
  for (auto _ : state) benchmark::DoNotOptimize(stunt::kernels::column_square_sums(x));
}
BENCHMARK(BM_ColumnSquareSums)->Unit(benchmark::kMillisecond);

void BM_ColumnSquareSumsAten(benchmark::State& state) {
  at::manual_seed(0);
  const at::Tensor x = at::randn({4096, 1536});
  for (auto _ : state) benchmark::DoNotOptimize(x.square().sum(0));
}
BENCHMARK(BM_ColumnSquareSumsAten)->Unit(benchmark::kMillisecond);

}  // namespace
