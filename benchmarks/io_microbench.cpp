// How fast the I/O foundations are: header validation, mapped vs copied tensor access, and
// zero counting for sparsity reports.
#include <ATen/ATen.h>
#include <benchmark/benchmark.h>

#include <filesystem>

#include "stunt/io/safetensors.h"
#include "stunt/kernels/count_zeros.h"

namespace {

namespace fs = std::filesystem;

fs::path write_model(int64_t tensors, int64_t elements_each) {
  const fs::path path =
      fs::temp_directory_path() / ("stunt-bench-" + std::to_string(tensors) + "x" +
                                   std::to_string(elements_each) + ".safetensors");
  if (!fs::exists(path)) {
    std::vector<stunt::io::NamedTensor> named;
    for (int64_t i = 0; i < tensors; ++i) {
      named.emplace_back("layers." + std::to_string(i) + ".weight", at::randn({elements_each}));
    }
    stunt::io::save_safetensors(path, named);
  }
  return path;
}

// Opening validates every header rule; data is not touched.
void BM_OpenAndValidateHeader(benchmark::State& state) {
  const fs::path path = write_model(state.range(0), 16);
  for (auto _ : state) {
    benchmark::DoNotOptimize(stunt::io::SafetensorsFile::open(path)->header().tensors.size());
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_OpenAndValidateHeader)->Arg(100)->Arg(1000)->Arg(10000);

// A mapped tensor costs no copy; the comparison is a clone of the same bytes.
void BM_MappedTensor(benchmark::State& state) {
  const auto file = stunt::io::SafetensorsFile::open(write_model(4, 1 << 22));
  for (auto _ : state) benchmark::DoNotOptimize(file->tensor("layers.0.weight").data_ptr());
}
BENCHMARK(BM_MappedTensor);

void BM_CopiedTensor(benchmark::State& state) {
  const auto file = stunt::io::SafetensorsFile::open(write_model(4, 1 << 22));
  for (auto _ : state) benchmark::DoNotOptimize(file->tensor("layers.0.weight").clone().data_ptr());
  state.SetBytesProcessed(state.iterations() * (int64_t{4} << 22));
}
BENCHMARK(BM_CopiedTensor);

void BM_CountZeros(benchmark::State& state) {
  const auto type = state.range(0) == 0 ? at::kFloat : at::kBFloat16;
  const at::Tensor t = at::randn({1 << 22}).to(type);
  for (auto _ : state) benchmark::DoNotOptimize(stunt::kernels::count_zeros(t));
  state.SetItemsProcessed(state.iterations() * t.numel());
}
BENCHMARK(BM_CountZeros)->Arg(0)->Arg(1);

}  // namespace
