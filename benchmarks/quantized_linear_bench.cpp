// Quantized linear kernels against float32 and against LibTorch's own quantized ops, side by
// side in one run: Stunt's W8A8 (int8_linear, activation quantization included) and W4A16
// (int4_linear), LibTorch's at::linear in float32, onednn::qlinear_pointwise on activations
// already quantized, at::_int_mm, and at::_weight_int4pack_mm_for_cpu on bf16 activations.
//
// Each format cycles through enough copies of its weights to exceed the last-level cache
// (--cycle-mib), so that every call reads its weights from memory as a decode step does.
// Timings interleave the implementations and keep the minimum of --repeats calls.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/core/dispatch/Dispatcher.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <fstream>
#include <functional>
#include <iostream>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>

#include "stunt/kernels/int4_linear.h"
#include "stunt/kernels/int8_linear.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Contender {
  std::string name;
  std::function<void()> call;
  double best = std::numeric_limits<double>::infinity();
};

int64_t copies_for(int64_t bytes_each, int64_t cycle_bytes) {
  return std::max<int64_t>(2, (cycle_bytes + bytes_each - 1) / bytes_each);
}

at::Tensor qlinear_u8(const at::Tensor& x_u8, const at::Tensor& packed, const at::Tensor& scales,
                      const at::Tensor& zeros) {
  static auto op =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("onednn::qlinear_pointwise", "")
          .typed<at::Tensor(at::Tensor, double, int64_t, at::Tensor, at::Tensor, at::Tensor,
                            std::optional<at::Tensor>, double, int64_t,
                            std::optional<c10::ScalarType>, c10::string_view,
                            c10::List<std::optional<c10::Scalar>>, c10::string_view)>();
  return op.call(x_u8, 1.0, 128, packed, scales, zeros, std::nullopt, 1.0, 0, at::kFloat, "none",
                 c10::List<std::optional<c10::Scalar>>(), "");
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Quantized linear kernels against float32 and LibTorch's quantized ops"};
  int64_t k = 4096;
  int64_t n = 4096;
  std::vector<int64_t> rows_list{1, 16, 64, 128, 512};
  int64_t group = 128;
  int64_t cycle_mib = 1200;
  int repeats = 15;
  int threads = 1;
  std::string json_path;
  app.add_option("--in", k, "in_features (K)");
  app.add_option("--out", n, "out_features (N)");
  app.add_option("--rows", rows_list, "input rows (M) to time")->delimiter(',');
  app.add_option("--group-size", group, "int4 group size");
  app.add_option("--cycle-mib", cycle_mib, "weights cycled per format, MiB (beyond the LLC)");
  app.add_option("--repeats", repeats, "timed calls per implementation; the minimum is kept");
  app.add_option("--threads", threads, "intra-op threads");
  app.add_option("--json", json_path, "write the results here");
  CLI11_PARSE(app, argc, argv);
  at::set_num_threads(threads);
  at::manual_seed(0);
  const int64_t cycle = cycle_mib << 20;

  // One set of quantized values, packed per format, then cloned so that the copies occupy
  // distinct memory.
  const at::Tensor q4 = at::randint(-8, 8, {n, k}, at::kInt);
  const at::Tensor s4 = at::rand({n, k / group}) * 0.01 + 0.001;
  const at::Tensor q8 = at::randint(-127, 128, {n, k}, at::kInt);
  const at::Tensor s8 = at::rand({n}) * 0.01 + 0.001;
  const at::Tensor dense = q8.to(at::kFloat) * s8.unsqueeze(1);

  std::vector<at::Tensor> fp32(copies_for(n * k * 4, cycle));
  for (auto& w : fp32) w = dense.clone();
  const stunt::kernels::Int4PackedWeight int4_base = stunt::kernels::pack_int4_weight(q4, s4, {});
  std::vector<stunt::kernels::Int4PackedWeight> int4(copies_for(int4_base.bytes(), cycle));
  for (auto& w : int4) {
    w = int4_base;
    w.nibbles = int4_base.nibbles.clone();
    w.scales = int4_base.scales.clone();
  }
  const at::Tensor aten4_base = at::_convert_weight_to_int4pack_for_cpu(q4 + 8, 1);
  const at::Tensor aten4_scales =
      at::stack({s4.t(), at::zeros_like(s4.t())}, 2).to(at::kBFloat16).contiguous();
  std::vector<at::Tensor> aten4(copies_for(n * k / 2, cycle));
  for (auto& w : aten4) w = aten4_base.clone();
  const at::Tensor int_mm_base = q8.to(at::kChar).t().contiguous().t();  // [K, N] column-major
  std::vector<at::Tensor> int_mm(copies_for(n * k, cycle));
  for (auto& w : int_mm) w = int_mm_base.clone();

  std::string why;
  const bool have_int8 = stunt::kernels::int8_linear_available(&why);
  std::vector<stunt::kernels::Int8PackedWeight> int8;
  if (have_int8) {
    const stunt::kernels::Int8PackedWeight base = stunt::kernels::pack_int8_weight(q8, s8);
    int8.resize(copies_for(n * k, cycle));
    for (auto& w : int8) w = base.clone();
  } else {
    std::cerr << "int8 kernels skipped: " << why << "\n";
  }

  nlohmann::json results = nlohmann::json::array();
  for (const int64_t m : rows_list) {
    const at::Tensor x = at::randn({m, k});
    const at::Tensor x_bf16 = x.to(at::kBFloat16);
    const stunt::kernels::Int8Rows x_q =
        have_int8 ? stunt::kernels::quantize_rows_dynamic(x) : stunt::kernels::Int8Rows{};
    const at::Tensor x_s8 = (x_q.values.defined() ? x_q.values.to(at::kInt) - 128
                                                  : at::randint(-127, 128, {m, k}, at::kInt))
                                .to(at::kChar);
    size_t i = 0;
    std::vector<Contender> contenders;
    contenders.push_back({"fp32 at::linear", [&] { at::linear(x, fp32[i % fp32.size()]); }});
    contenders.push_back(
        {"stunt int4_linear", [&] { stunt::kernels::int4_linear(x, int4[i % int4.size()], {}); }});
    contenders.push_back({"aten _weight_int4pack_mm_for_cpu (bf16 activations)", [&] {
                            at::_weight_int4pack_mm_for_cpu(x_bf16, aten4[i % aten4.size()], group,
                                                            aten4_scales);
                          }});
    if (m > 16) {  // _int_mm wants more than 16 rows
      contenders.push_back(
          {"aten _int_mm (s8 activations)", [&] { at::_int_mm(x_s8, int_mm[i % int_mm.size()]); }});
    }
    if (have_int8) {
      contenders.push_back({"stunt int8 through oneDNN (with activation quantization)", [&] {
                              const auto xq = stunt::kernels::quantize_rows_dynamic(x);
                              stunt::kernels::int8_linear_onednn(xq, int8[i % int8.size()], {});
                            }});
      contenders.push_back({"stunt int8_linear (with activation quantization)", [&] {
                              const auto xq = stunt::kernels::quantize_rows_dynamic(x);
                              stunt::kernels::int8_linear(xq, int8[i % int8.size()], {});
                            }});
      // oneDNN's copies are made here, outside the timings.
      for (auto& w : int8) w.onednn_packed();
      contenders.push_back({"onednn qlinear_pointwise (u8 activations given)", [&] {
                              const auto& w = int8[i % int8.size()];
                              qlinear_u8(x_q.values, w.onednn_packed(), w.scales, w.zero_points);
                            }});
    }
    for (auto& c : contenders) c.call();  // warm up: first-call allocations, oneDNN primitives
    for (int r = 0; r < repeats; ++r) {
      for (auto& c : contenders) {
        ++i;
        const auto start = Clock::now();
        c.call();
        c.best = std::min(c.best, std::chrono::duration<double>(Clock::now() - start).count());
      }
    }
    const double fp32_s = contenders[0].best;
    std::map<std::string, double> by_name;
    for (const auto& c : contenders) by_name[c.name] = c.best;
    for (const auto& c : contenders) {
      std::cout << "M=" << m << "  " << c.name << ": " << c.best * 1e3 << " ms, " << fp32_s / c.best
                << "x fp32\n";
      results.push_back({{"rows", m},
                         {"implementation", c.name},
                         {"seconds", c.best},
                         {"speedup_vs_fp32", fp32_s / c.best}});
    }
    std::cout << "M=" << m << "  int4 path: " << stunt::kernels::int4_linear_path(m)
              << ", int8 path: "
              << (have_int8 ? stunt::kernels::int8_linear_path(m, int8[0]) : "none") << "\n";
  }
  if (!json_path.empty()) {
    nlohmann::json doc = {{"in", k},
                          {"out", n},
                          {"group_size", group},
                          {"threads", threads},
                          {"cycle_mib", cycle_mib},
                          {"repeats", repeats},
                          {"results", results}};
    std::ofstream(json_path) << doc.dump(2) << "\n";
  }
  return 0;
}
