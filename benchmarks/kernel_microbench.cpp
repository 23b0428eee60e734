// The CPU kernels of calibration against the ATen calls they replace, on SmolLM2-135M's shapes
// (8 windows of 512 tokens joined into one forward; 9 query heads reading 3 key/value heads of
// 64; width 576, MLP 1536):
//
//   build/dev/benchmarks/stunt_microbench \
//       --benchmark_filter='Attention|Selection|SquareSums|Rotary|RmsNorm|GatedSilu|Linear'
#include <ATen/ATen.h>
#include <benchmark/benchmark.h>

#include "stunt/kernels/causal_attention.h"
#include "stunt/kernels/column_square_sums.h"
#include "stunt/kernels/gated_silu.h"
#include "stunt/kernels/onednn_linear.h"
#include "stunt/kernels/rms_norm.h"
#include "stunt/kernels/rotary_embedding.h"
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

// Rotary positions on the 9 query heads of a joined forward: [8, 512, 576] viewed as heads.
struct RotaryInputs {
  at::Tensor x, cos, sin;
};

RotaryInputs smollm2_rotary_inputs() {
  at::manual_seed(0);
  return {at::randn({8, 512, 9 * 64}).view({8, 512, 9, 64}).transpose(1, 2),
          at::randn({1, 512, 64}), at::randn({1, 512, 64})};
}

void BM_RotaryStunt(benchmark::State& state) {
  const RotaryInputs r = smollm2_rotary_inputs();
  for (auto _ : state) {
    benchmark::DoNotOptimize(stunt::kernels::rotary_embedding(r.x, r.cos, r.sin));
  }
}
BENCHMARK(BM_RotaryStunt)->Unit(benchmark::kMillisecond);

void BM_RotaryAten(benchmark::State& state) {
  const RotaryInputs r = smollm2_rotary_inputs();
  for (auto _ : state) {
    const at::Tensor rotated = at::cat({-r.x.narrow(-1, 32, 32), r.x.narrow(-1, 0, 32)}, -1);
    benchmark::DoNotOptimize(r.x * r.cos.unsqueeze(1) + rotated * r.sin.unsqueeze(1));
  }
}
BENCHMARK(BM_RotaryAten)->Unit(benchmark::kMillisecond);

void BM_RmsNormStunt(benchmark::State& state) {
  at::manual_seed(0);
  const at::Tensor x = at::randn({8, 512, 576});
  const at::Tensor weight = at::randn({576});
  for (auto _ : state) benchmark::DoNotOptimize(stunt::kernels::rms_norm(x, weight, 1e-5));
}
BENCHMARK(BM_RmsNormStunt)->Unit(benchmark::kMillisecond);

void BM_RmsNormAten(benchmark::State& state) {
  at::manual_seed(0);
  const at::Tensor x = at::randn({8, 512, 576});
  const at::Tensor weight = at::randn({576});
  for (auto _ : state) benchmark::DoNotOptimize(at::rms_norm(x, {576}, weight, 1e-5));
}
BENCHMARK(BM_RmsNormAten)->Unit(benchmark::kMillisecond);

void BM_GatedSiluStunt(benchmark::State& state) {
  at::manual_seed(0);
  const at::Tensor gate = at::randn({8, 512, 1536});
  const at::Tensor up = at::randn({8, 512, 1536});
  for (auto _ : state) benchmark::DoNotOptimize(stunt::kernels::gated_silu(gate, up));
}
BENCHMARK(BM_GatedSiluStunt)->Unit(benchmark::kMillisecond);

// ATen's form as the model ran it: silu into a new tensor, the product in place.
void BM_GatedSiluAten(benchmark::State& state) {
  at::manual_seed(0);
  const at::Tensor gate = at::randn({8, 512, 1536});
  const at::Tensor up = at::randn({8, 512, 1536});
  for (auto _ : state) benchmark::DoNotOptimize(at::silu(gate).mul_(up));
}
BENCHMARK(BM_GatedSiluAten)->Unit(benchmark::kMillisecond);

// One SmolLM2 block's seven linear products on 4096 tokens: q, k, v and o, then gate, up and
// down. Wall time, as both libraries run their products on every thread.
struct BlockProducts {
  at::Tensor hidden = at::randn({8, 512, 576});
  at::Tensor intermediate = at::randn({8, 512, 1536});
  std::vector<at::Tensor> reading_hidden = {at::randn({576, 576}),  at::randn({192, 576}),
                                            at::randn({192, 576}),  at::randn({576, 576}),
                                            at::randn({1536, 576}), at::randn({1536, 576})};
  at::Tensor down = at::randn({576, 1536});
};

template <typename Linear>
void run_block_products(benchmark::State& state, Linear linear) {
  at::manual_seed(0);
  const BlockProducts block;
  for (auto _ : state) {
    for (const at::Tensor& weight : block.reading_hidden) {
      benchmark::DoNotOptimize(linear(block.hidden, weight));
    }
    benchmark::DoNotOptimize(linear(block.intermediate, block.down));
  }
}

void BM_LinearOnednn(benchmark::State& state) {
  run_block_products(state, [](const at::Tensor& x, const at::Tensor& w) {
    return stunt::kernels::onednn_linear(x, w, at::Tensor());
  });
}
BENCHMARK(BM_LinearOnednn)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_LinearAten(benchmark::State& state) {
  run_block_products(state,
                     [](const at::Tensor& x, const at::Tensor& w) { return at::linear(x, w); });
}
BENCHMARK(BM_LinearAten)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
