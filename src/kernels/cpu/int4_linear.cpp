#include "stunt/kernels/int4_linear.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>

#include "cpu_features.h"
#include "int4_tiles.h"
#include "stunt/core/error.h"

namespace stunt::kernels {
namespace {

constexpr int64_t kBlock = 16;
/// From this many rows on, a panel of dequantized columns through LibTorch's matrix product
/// beats the tiles (benchmarks/quantized_linear_bench.cpp measures both).
constexpr int64_t kPanelRows = 192;
/// Columns dequantized at a time on the panel path (256 measured fastest of 256, 1024, 4096).
constexpr int64_t kPanelColumns = 256;

bool cpu_has_avx512() {
#if defined(__x86_64__) && defined(__GNUC__)
  static const bool has = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                          __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("fma");
  return has;
#else
  return false;
#endif
}

struct TilesImplementation {
  detail::Int4TilesFn run;
  detail::Int4DequantizeFn dequantize;
  const char* name;
};

const TilesImplementation& tiles_implementation() {
  static const TilesImplementation chosen = []() -> TilesImplementation {
    if (cpu_has_avx512()) {
      return {detail::int4_tiles_avx512, detail::int4_dequantize_avx512, "int4-tiles-avx512"};
    }
    if (detail::cpu_has_avx2_fma()) {
      return {detail::int4_tiles_avx2, detail::int4_dequantize_avx2, "int4-tiles-avx2"};
    }
    return {detail::int4_tiles_portable, detail::int4_dequantize_portable, "int4-tiles-portable"};
  }();
  return chosen;
}

/// The weight fields of a tile problem.
detail::Int4TileProblem weight_problem(const Int4PackedWeight& w) {
  detail::Int4TileProblem problem;
  problem.in = w.in_features;
  problem.nibbles = w.nibbles.data_ptr<uint8_t>();
  problem.scales = w.scales.data_ptr<float>();
  problem.zeros = w.zeros.defined() ? w.zeros.data_ptr<float>() : nullptr;
  problem.groups = w.in_features / w.group_size;
  problem.group_size = w.group_size;
  problem.out = w.out_features;
  return problem;
}

at::Tensor panels(const at::Tensor& x, const Int4PackedWeight& w) {
  const int64_t rows = x.size(0);
  at::Tensor y = at::empty({rows, w.out_features}, x.options());
  const int64_t blocks = w.out_features / kBlock;
  const int64_t panel_blocks = kPanelColumns / kBlock;
  const detail::Int4TileProblem problem = weight_problem(w);
  const detail::Int4DequantizeFn dequantize = tiles_implementation().dequantize;
  at::Tensor panel = at::empty({w.in_features * kPanelColumns}, x.options());
  at::Tensor product = at::empty({rows, kPanelColumns}, x.options());
  for (int64_t block = 0; block < blocks; block += panel_blocks) {
    const int64_t end = std::min(blocks, block + panel_blocks);
    const int64_t columns = (end - block) * kBlock;
    dequantize(problem, block, end, panel.data_ptr<float>());
    at::Tensor part = product.narrow(1, 0, columns);
    at::mm_out(part, x, panel.narrow(0, 0, w.in_features * columns).view({w.in_features, columns}));
    y.narrow(1, block * kBlock, columns).copy_(part);
  }
  return y;
}

at::Tensor tiles(const at::Tensor& x, const Int4PackedWeight& w,
                 detail::Int4TilesFn run = tiles_implementation().run) {
  const int64_t rows = x.size(0);
  const int64_t groups = w.in_features / w.group_size;
  const at::Tensor group_sums = x.view({rows, groups, w.group_size}).sum(2).contiguous();
  at::Tensor y = at::empty({rows, w.out_features}, x.options());
  detail::Int4TileProblem problem = weight_problem(w);
  problem.x = x.data_ptr<float>();
  problem.x_group_sums = group_sums.data_ptr<float>();
  problem.rows = rows;
  problem.y = y.data_ptr<float>();
  // Grain: whole 64-column stretches per thread, so that a thread's tiles stay wide.
  at::parallel_for(0, w.out_features / kBlock, 4,
                   [&](int64_t begin, int64_t end) { run(problem, begin, end); });
  return y;
}

}  // namespace

int64_t Int4PackedWeight::bytes() const {
  int64_t total = nibbles.numel() + scales.numel() * 4;
  if (zeros.defined()) total += zeros.numel() * 4;
  return total;
}

Int4PackedWeight pack_int4_weight(const at::Tensor& q, const at::Tensor& scale,
                                  const at::Tensor& zero_point) {
  STUNT_CHECK_AS(ValueError, q.dim() == 2, "int4 weights must be [out, in], got ", q.sizes());
  const int64_t out = q.size(0);
  const int64_t in = q.size(1);
  STUNT_CHECK_AS(
      ValueError,
      scale.dim() == 2 && scale.size(0) == out && scale.size(1) > 0 && in % scale.size(1) == 0,
      "int4 scales must be [out, groups] with groups dividing in = ", in, ", got ", scale.sizes());
  const int64_t groups = scale.size(1);
  const int64_t group_size = in / groups;
  STUNT_CHECK_AS(ValueError, out % kBlock == 0, "the int4 kernel takes out_features in multiples",
                 " of 16; this layer has ", out);
  STUNT_CHECK_AS(ValueError, group_size % 8 == 0, "the int4 kernel takes group sizes that are ",
                 "multiples of 8; this layer's groups hold ", group_size, " inputs");
  const at::Tensor values = q.to(at::kInt).contiguous();
  STUNT_CHECK_AS(
      ValueError,
      values.numel() == 0 || (values.min().item<int>() >= -8 && values.max().item<int>() <= 7),
      "int4 values must lie in [-8, 7]; found [", values.min().item<int>(), ", ",
      values.max().item<int>(), "]");
  const int64_t blocks = out / kBlock;
  Int4PackedWeight packed;
  packed.out_features = out;
  packed.in_features = in;
  packed.group_size = group_size;
  // [out, in] → [blocks, 16, in/8, 4, 2] → [blocks, in/8, 16, 4, 2]: the four bytes of
  // (block, octet, j) hold feature j's eight neighbouring inputs, input i in bits 4i of the
  // little-endian word.
  const at::Tensor unsigned_values = (values + 8).view({blocks, kBlock, in / 8, 4, 2});
  const at::Tensor interleaved = unsigned_values.permute({0, 2, 1, 3, 4});
  packed.nibbles =
      (interleaved.select(4, 0) + interleaved.select(4, 1) * 16).to(at::kByte).contiguous();
  auto by_block = [&](const at::Tensor& t) {
    return t.to(at::kFloat).reshape({blocks, kBlock, groups}).permute({0, 2, 1}).contiguous();
  };
  packed.scales = by_block(scale);
  if (zero_point.defined()) {
    STUNT_CHECK_AS(ValueError, zero_point.sizes() == scale.sizes(),
                   "int4 zero points must have the scales' shape ", scale.sizes(), ", got ",
                   zero_point.sizes());
    const at::Tensor z = zero_point.to(at::kFloat);
    STUNT_CHECK_AS(
        ValueError,
        (z >= -8).all().item<bool>() && (z <= 7).all().item<bool>() && at::equal(z, z.round()),
        "int4 zero points must be integers in [-8, 7]");
    packed.zeros = by_block(z + 8);
  }
  return packed;
}

at::Tensor dequantize_int4_weight(const Int4PackedWeight& weight) {
  at::Tensor transposed = at::empty({weight.in_features, weight.out_features}, at::kFloat);
  tiles_implementation().dequantize(weight_problem(weight), 0, weight.out_features / kBlock,
                                    transposed.data_ptr<float>());
  return transposed.t().contiguous();
}

bool int4_linear_supported(const at::Tensor& input, const Int4PackedWeight& weight,
                           const at::Tensor& bias, std::string* why) {
  auto refuse = [&](const std::string& reason) {
    if (why != nullptr) *why = reason;
    return false;
  };
  if (!weight.nibbles.defined()) return refuse("no packed weight");
  if (at::GradMode::is_enabled() &&
      (input.requires_grad() || (bias.defined() && bias.requires_grad()))) {
    return refuse("an autograd graph is being recorded, and the int4 kernel has no backward");
  }
  if (!input.device().is_cpu() || input.scalar_type() != at::kFloat ||
      input.layout() != at::kStrided) {
    return refuse(stunt::str("the int4 kernel takes float32 CPU input, got ", input.toString()));
  }
  if (input.dim() < 1 || input.size(-1) != weight.in_features) {
    return refuse(
        stunt::str("input ", input.sizes(), " does not end in in_features ", weight.in_features));
  }
  if (bias.defined() && (bias.scalar_type() != at::kFloat || bias.dim() != 1 ||
                         bias.size(0) != weight.out_features || !bias.device().is_cpu())) {
    return refuse(stunt::str("bias must be float32 [", weight.out_features, "]"));
  }
  return true;
}

at::Tensor int4_linear(const at::Tensor& input, const Int4PackedWeight& weight,
                       const at::Tensor& bias) {
  std::string why;
  STUNT_CHECK(int4_linear_supported(input, weight, bias, &why), "int4_linear: ", why);
  const at::Tensor x = input.reshape({-1, weight.in_features}).contiguous();
  at::Tensor y = x.size(0) == 0            ? at::empty({0, weight.out_features}, x.options())
                 : x.size(0) >= kPanelRows ? panels(x, weight)
                                           : tiles(x, weight);
  if (bias.defined()) y.add_(bias);
  std::vector<int64_t> shape = input.sizes().vec();
  shape.back() = weight.out_features;
  return y.view(shape);
}

at::Tensor int4_linear_tiles(const at::Tensor& input, const Int4PackedWeight& weight,
                             const std::string& isa) {
  std::string why;
  STUNT_CHECK(int4_linear_supported(input, weight, at::Tensor(), &why), "int4_linear: ", why);
  detail::Int4TilesFn run = nullptr;
  if (isa == "avx512" && cpu_has_avx512()) run = detail::int4_tiles_avx512;
  if (isa == "avx2" && detail::cpu_has_avx2_fma()) run = detail::int4_tiles_avx2;
  if (isa == "portable") run = detail::int4_tiles_portable;
  STUNT_CHECK_AS(NotImplementedError, run != nullptr, "the int4 tile kernel for \"", isa,
                 "\" does not run on this CPU (or there is none by that name)");
  const at::Tensor x = input.reshape({-1, weight.in_features}).contiguous();
  std::vector<int64_t> shape = input.sizes().vec();
  shape.back() = weight.out_features;
  return (x.size(0) == 0 ? at::empty({0, weight.out_features}, x.options()) : tiles(x, weight, run))
      .view(shape);
}

std::string int4_linear_path(int64_t rows) {
  if (rows >= kPanelRows) return "int4-panels-sgemm";
  return tiles_implementation().name;
}

}  // namespace stunt::kernels
