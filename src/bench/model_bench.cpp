#include "stunt/bench/model_bench.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/GradMode.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <fstream>
#include <sstream>

#include "stunt/core/error.h"
#include "stunt/core/logging.h"
#include "stunt/io/dataset.h"
#include "stunt/model/evaluate.h"
#include "stunt/model/kv_cache.h"
#include "stunt/model/load.h"
#include "stunt/model/thread_governor.h"

namespace stunt::bench {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

int64_t resident_bytes_now() {
  std::ifstream statm("/proc/self/statm");
  int64_t pages = 0;
  int64_t resident = 0;
  statm >> pages >> resident;
  return resident * sysconf(_SC_PAGESIZE);
}

std::string cpu_model() {
  std::ifstream info("/proc/cpuinfo");
  std::string line;
  while (std::getline(info, line)) {
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  }
  return "unknown CPU";
}

std::string cpu_isa() {
#if defined(__x86_64__) && defined(__GNUC__)
  std::string isa = __builtin_cpu_supports("avx512f")
                        ? "AVX-512"
                        : (__builtin_cpu_supports("avx2") ? "AVX2" : "SSE");
  if (__builtin_cpu_supports("avx512vnni"))
    isa += " VNNI";
  else if (__builtin_cpu_supports("avxvnni"))
    isa += " AVX-VNNI";
  std::ifstream info("/proc/cpuinfo");
  std::string text((std::istreambuf_iterator<char>(info)), std::istreambuf_iterator<char>());
  if (text.find(" amx_int8") != std::string::npos) isa += " AMX";
  return isa;
#else
  return "non-x86";
#endif
}

/// Read bandwidth: sums 1 GiB of floats (beyond any last-level cache seen here), best of 3.
double measure_bandwidth_gbps() {
  const at::Tensor data = at::ones({int64_t{1} << 28});
  double best = 1e30;
  for (int i = 0; i < 3; ++i) {
    const auto start = Clock::now();
    (void)data.sum().item<float>();
    best = std::min(best, seconds_since(start));
  }
  return static_cast<double>(data.numel()) * 4 / best / 1e9;
}

/// Float32 matrix products of 1024³, best of 5, in GFLOPS.
double measure_fp32_gflops() {
  const at::Tensor a = at::randn({1024, 1024});
  const at::Tensor b = at::randn({1024, 1024});
  (void)at::mm(a, b);
  double best = 1e30;
  for (int i = 0; i < 5; ++i) {
    const auto start = Clock::now();
    (void)at::mm(a, b);
    best = std::min(best, seconds_since(start));
  }
  return 2.0 * 1024 * 1024 * 1024 / best / 1e9;
}

double percentile(std::vector<double> values, double q) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const size_t i = std::min(values.size() - 1, static_cast<size_t>(q * (values.size() - 1) + 0.5));
  return values[i];
}

struct Loaded {
  std::unique_ptr<model::HfModel> model;
  ModelMeasurement m;
  std::vector<std::vector<double>> step_latencies;  // per batch size
};

void describe(const model::HfModel& model, const std::vector<quant::LayerKernel>& report,
              ModelMeasurement& m) {
  std::map<std::string, const quant::LayerKernel*> packed;
  for (const auto& entry : report) {
    ++m.kernels[entry.kernel];
    if (entry.kernel != "reference") packed[entry.layer] = &entry;
  }
  bool all_int8 = !packed.empty();
  for (const auto& [name, entry] : packed) all_int8 = all_int8 && entry->kernel == "int8-linear";
  m.compute_type = all_int8 ? "int8" : "fp16";
  // Keys and values per token of context, in fp16 as a GPU runtime keeps them.
  const model::HfConfig& config = model.config();
  if (config.has("num_hidden_layers") && config.has("num_attention_heads") &&
      config.has("hidden_size")) {
    const int64_t heads = config.integer("num_attention_heads");
    const int64_t kv_heads = config.integer("num_key_value_heads", heads);
    const int64_t head_dim = config.integer("head_dim", config.integer("hidden_size") / heads);
    m.kv_bytes_per_token = 2 * config.integer("num_hidden_layers") * kv_heads * head_dim * 2;
  }
  for (const model::Layer* layer : model.layers()) {
    const int64_t numel = layer->weight.numel() + (layer->bias.defined() ? layer->bias.numel() : 0);
    if (!layer->tied_to.empty() && layer->kind == model::LayerKind::Linear) {
      // A head tied to the embedding holds no parameters of its own.
    } else {
      m.parameters += numel;
    }
    // Embedding lookups read a few rows per step: only the other layers count as bytes read.
    if (layer->kind == model::LayerKind::Embedding) continue;
    auto it = packed.find(layer->name);
    if (it != packed.end()) {
      m.weight_bytes += it->second->weight_bytes;
      m.device_weight_bytes += it->second->weight_bytes;
    } else {
      m.weight_bytes += numel * 4;
      m.device_weight_bytes += numel * 2;
    }
  }
}

/// One prefill and gen_len decode steps of `batch` sequences; returns (prefill seconds, decode
/// seconds) and appends each step's latency.
std::pair<double, double> run_once(model::HfModel& model, int64_t batch, const BenchOptions& o,
                                   std::vector<double>* steps) {
  at::NoGradGuard no_grad;
  const int64_t vocab = model.config().integer("vocab_size", int64_t{32000});
  at::Generator generator = at::detail::createCPUGenerator(1234);
  const at::Tensor prompt =
      at::randint(3, std::max<int64_t>(4, vocab), {batch, o.prompt_len}, generator, at::kLong);
  model::KvCache cache;
  auto start = Clock::now();
  at::Tensor logits;
  at::Tensor next;
  if (model.is_encoder_decoder()) {
    model.start_decoding(prompt, at::Tensor(), cache);
    next = at::full({batch, 1}, model.decoder_start_token_id(), at::kLong);
    logits = model.decode_step(next, at::Tensor(), cache, 1);
  } else {
    logits = model.decode_step(prompt, at::Tensor(), cache, 1);
  }
  next = logits.select(1, logits.size(1) - 1).argmax(-1).unsqueeze(1);
  const double prefill = seconds_since(start);
  start = Clock::now();
  // As generate() decodes: the governor keeps the thread count fast when a core is taken.
  model::DecodeThreadGovernor governor;
  for (int64_t t = 0; t < o.gen_len; ++t) {
    const auto step = Clock::now();
    governor.begin_step();
    logits = model.decode_step(next, at::Tensor(), cache, 1);
    next = logits.select(1, logits.size(1) - 1).argmax(-1).unsqueeze(1);
    governor.end_step(batch);
    if (steps != nullptr) steps->push_back(seconds_since(step));
  }
  return {prefill, seconds_since(start)};
}

std::optional<double> perplexity_of(model::HfModel& model, const std::string& path,
                                    const BenchOptions& o) {
  if (o.quality_data.empty()) return std::nullopt;
  const io::Tokenizer tokenizer = model::load_model_tokenizer(path);
  auto reader = io::TokenWindows::open(o.quality_data, tokenizer, o.quality_seq_len, {});
  std::vector<std::vector<int64_t>> windows;
  while (auto w = reader.next()) {
    windows.push_back(std::move(*w));
    if (static_cast<int64_t>(windows.size()) >= o.quality_windows) break;
  }
  STUNT_CHECK_AS(ValueError, !windows.empty(), o.quality_data.string(), " holds fewer than ",
                 o.quality_seq_len, " tokens; pass a smaller --quality-seq-len");
  return model::perplexity(model, windows).perplexity;
}

}  // namespace

BenchReport run_bench(const std::vector<std::string>& paths, const BenchOptions& o,
                      const std::vector<DeviceProfile>& devices) {
  STUNT_CHECK_AS(ValueError, !paths.empty(), "compress bench needs at least one model");
  STUNT_CHECK_AS(ValueError, o.prompt_len > 0 && o.gen_len > 0 && o.repeats > 0,
                 "--prompt-len, --gen-len and --repeats must be positive");
  for (int64_t b : o.batches) {
    STUNT_CHECK_AS(ValueError, b > 0, "--batch sizes must be positive, got ", b);
  }
  BenchReport report;
  report.options = o;
  report.devices = devices;
  report.machine.cpu = cpu_model();
  report.machine.isa = cpu_isa();
  report.machine.threads = at::get_num_threads();
  {
    char date[32];
    const std::time_t now = std::time(nullptr);
    std::strftime(date, sizeof date, "%Y-%m-%d", std::gmtime(&now));
    report.machine.date = date;
  }
  log::info("bench: measuring this machine (", report.machine.cpu, ", ", report.machine.isa, ", ",
            report.machine.threads, " threads)");
  report.machine.bandwidth_gbps = measure_bandwidth_gbps();
  report.machine.fp32_gflops = measure_fp32_gflops();

  std::vector<Loaded> loaded;
  for (const std::string& path : paths) {
    Loaded l;
    l.m.path = path;
    const int64_t before = resident_bytes_now();
    std::vector<quant::LayerKernel> kernels;
    l.model = quant::load_model_for_inference(path, o.kernels, false, &kernels);
    STUNT_CHECK_AS(NotImplementedError, l.model->supports_decoding(), path,
                   ": compress bench times generation, which this model (", l.model->architecture(),
                   ") does not do; it runs causal LMs and T5");
    describe(*l.model, kernels, l.m);
    // After one short run, so that memory-mapped weights count once touched.
    run_once(*l.model, 1, o, nullptr);
    l.m.resident_bytes = resident_bytes_now() - before;
    l.step_latencies.resize(o.batches.size());
    for (int64_t b : o.batches) l.m.batches.push_back({b});
    loaded.push_back(std::move(l));
  }
  // Untimed first calls: lazy packing, allocator growth, oneDNN primitives.
  for (Loaded& l : loaded) {
    for (int64_t b : o.batches) run_once(*l.model, b, o, nullptr);
  }
  for (int r = 0; r < o.repeats; ++r) {
    log::info("bench: round ", r + 1, " of ", o.repeats);
    for (size_t bi = 0; bi < o.batches.size(); ++bi) {
      const int64_t b = o.batches[bi];
      for (Loaded& l : loaded) {
        const auto [prefill, decode] = run_once(*l.model, b, o, &l.step_latencies[bi]);
        BatchTiming& t = l.m.batches[bi];
        if (t.ttft_s == 0 || prefill < t.ttft_s) t.ttft_s = prefill;
        const double rate = static_cast<double>(b * o.gen_len) / decode;
        t.decode_tokens_per_s = std::max(t.decode_tokens_per_s, rate);
      }
    }
  }
  for (Loaded& l : loaded) {
    for (size_t bi = 0; bi < o.batches.size(); ++bi) {
      BatchTiming& t = l.m.batches[bi];
      t.prefill_tokens_per_s = static_cast<double>(t.batch * o.prompt_len) / t.ttft_s;
      t.token_p50_s = percentile(l.step_latencies[bi], 0.5);
      t.token_p99_s = percentile(l.step_latencies[bi], 0.99);
      if (t.batch == 1) {
        l.m.decode_bandwidth_gbps =
            static_cast<double>(l.m.weight_bytes) * t.decode_tokens_per_s / 1e9;
        l.m.bandwidth_share = l.m.decode_bandwidth_gbps / report.machine.bandwidth_gbps;
      }
    }
    l.m.perplexity = perplexity_of(*l.model, l.m.path, o);
    if (l.m.perplexity && loaded.front().m.perplexity) {
      l.m.quality_delta = *l.m.perplexity / *loaded.front().m.perplexity - 1.0;
    }
    report.models.push_back(l.m);
  }
  // Efficiencies from the first model (the baseline, usually dense float32).
  const ModelMeasurement& base = report.models.front();
  report.bandwidth_efficiency =
      std::min(1.0, base.bandwidth_share > 0 ? base.bandwidth_share : 1.0);
  double best_prefill = 0;
  for (const BatchTiming& t : base.batches)
    best_prefill = std::max(best_prefill, t.prefill_tokens_per_s);
  const double prefill_gflops = 2.0 * static_cast<double>(base.parameters) * best_prefill / 1e9;
  report.compute_efficiency = std::min(1.0, prefill_gflops / report.machine.fp32_gflops);
  report.projections = project(report);
  return report;
}

std::vector<Projection> project(const BenchReport& report) {
  std::vector<Projection> out;
  const BenchOptions& o = report.options;
  for (const ModelMeasurement& m : report.models) {
    for (const BatchTiming& t : m.batches) {
      Projection here{m.path, "local-cpu", t.batch, t.decode_tokens_per_s, t.prefill_tokens_per_s,
                      0,      "measured",  true};
      if (o.cpu_price_per_hour > 0) {
        here.cost_per_million_tokens = o.cpu_price_per_hour / (t.decode_tokens_per_s * 3600) * 1e6;
      }
      out.push_back(here);
    }
    for (const DeviceProfile& d : report.devices) {
      auto peak = d.peak_tflops.find(m.compute_type);
      if (peak == d.peak_tflops.end()) peak = d.peak_tflops.find("fp16");
      if (peak == d.peak_tflops.end()) continue;
      for (const BatchTiming& t : m.batches) {
        // A decode step reads every weight once and each sequence's keys and values (at the
        // run's mean context), and does 2 FLOPs per parameter per sequence.
        const double context =
            static_cast<double>(o.prompt_len) + static_cast<double>(o.gen_len) / 2;
        const double bytes =
            static_cast<double>(m.device_weight_bytes) +
            static_cast<double>(m.kv_bytes_per_token) * context * static_cast<double>(t.batch);
        const double flops = 2.0 * static_cast<double>(m.parameters) * static_cast<double>(t.batch);
        const double memory_s = bytes / (d.bandwidth_gbps * 1e9 * report.bandwidth_efficiency);
        const double compute_s = flops / (peak->second * 1e12 * report.compute_efficiency);
        const double step = std::max(memory_s, compute_s);
        // A prefill reads the weights once for batch × prompt_len tokens of the same FLOPs each.
        const double prompt_tokens = static_cast<double>(t.batch * o.prompt_len);
        const double prefill_s =
            std::max(static_cast<double>(m.device_weight_bytes) /
                         (d.bandwidth_gbps * 1e9 * report.bandwidth_efficiency),
                     2.0 * static_cast<double>(m.parameters) * prompt_tokens /
                         (peak->second * 1e12 * report.compute_efficiency));
        Projection p{m.path,
                     d.name,
                     t.batch,
                     static_cast<double>(t.batch) / step,
                     prompt_tokens / prefill_s,
                     0,
                     memory_s >= compute_s ? "memory" : "compute",
                     false};
        p.cost_per_million_tokens = d.price_per_hour / (p.decode_tokens_per_s * 3600) * 1e6;
        out.push_back(p);
      }
    }
  }
  return out;
}

}  // namespace stunt::bench
