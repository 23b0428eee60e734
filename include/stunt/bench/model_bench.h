#pragma once
/// `compress bench`: models side by side on this machine (prefill and decode speed, latency
/// percentiles, memory, quality against the first model), and a roofline projection of each
/// onto device profiles with its cost per million tokens.

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "stunt/bench/device_profile.h"
#include "stunt/quant/quantized_kernels.h"

namespace stunt::bench {

struct BenchOptions {
  std::vector<int64_t> batches{1};
  /// Prompt tokens per sequence (prefill), and tokens generated after it (decode).
  int64_t prompt_len = 64;
  int64_t gen_len = 32;
  /// Timed rounds; each round runs every model once per batch size, in turn, and the best round
  /// counts (the minimum of repeats).
  int repeats = 3;
  quant::KernelMode kernels = quant::KernelMode::Fast;
  /// Perplexity on the first `quality_windows` windows of `quality_seq_len` tokens of this text
  /// file; empty: no quality measure.
  std::filesystem::path quality_data;
  int64_t quality_windows = 4;
  int64_t quality_seq_len = 256;
  /// Dollars per hour of this machine, for its own cost per million tokens (0: not costed).
  double cpu_price_per_hour = 0;
};

struct BatchTiming {
  int64_t batch = 1;
  /// The best round's prefill of batch × prompt_len tokens (its logits for the last position
  /// included): time to first token.
  double ttft_s = 0;
  double prefill_tokens_per_s = 0;
  /// The best round's decode of gen_len steps: batch × gen_len tokens over its time.
  double decode_tokens_per_s = 0;
  /// Per-step decode latency over every round's steps.
  double token_p50_s = 0;
  double token_p99_s = 0;
};

struct ModelMeasurement {
  std::string path;
  int64_t parameters = 0;
  /// Bytes of weights a forward reads: packed sizes for layers that run packed, the stored
  /// float32 otherwise.
  int64_t weight_bytes = 0;
  /// How the weights would be stored on a GPU runtime: int4/int8 as packed, others in fp16.
  int64_t device_weight_bytes = 0;
  /// Keys and values one token of context adds to the cache, in fp16.
  int64_t kv_bytes_per_token = 0;
  /// Resident memory the model added (RSS after loading it and one short run − before).
  int64_t resident_bytes = 0;
  /// Quantized layers per kernel ("int4-linear": 210, ...).
  std::map<std::string, int> kernels;
  /// "fp16" for dense models, "int8" when every quantized layer has int8 inputs: the arithmetic
  /// a GPU would run it in, for the projection.
  std::string compute_type = "fp16";
  std::vector<BatchTiming> batches;
  std::optional<double> perplexity;
  /// perplexity / the first model's − 1.
  std::optional<double> quality_delta;
  /// Batch-1 decode: weight bytes per step over the step time.
  double decode_bandwidth_gbps = 0;
  double bandwidth_share = 0;
};

struct Machine {
  std::string cpu;
  std::string isa;
  int threads = 1;
  /// Measured here: read bandwidth over 1 GiB, and float32 matrix-product rate.
  double bandwidth_gbps = 0;
  double fp32_gflops = 0;
  std::string date;
};

/// One model's prefill and decode on one device at one batch size: measured (this machine) or
/// projected.
struct Projection {
  std::string model;
  std::string device;
  int64_t batch = 1;
  double decode_tokens_per_s = 0;
  /// Prompt tokens per second over a prefill of batch × prompt_len tokens; 0 in a report written
  /// before prefill was projected.
  double prefill_tokens_per_s = 0;
  /// Dollars per million generated tokens; 0 when the device has no price.
  double cost_per_million_tokens = 0;
  /// "memory" or "compute": which roofline term bounds the step.
  std::string bound;
  bool measured = false;
};

struct BenchReport {
  Machine machine;
  BenchOptions options;
  std::vector<ModelMeasurement> models;
  std::vector<DeviceProfile> devices;
  /// Efficiencies of this machine's run, applied to every device: achieved bandwidth over the
  /// measured peak (batch-1 decode) and achieved float32 rate over the measured peak (prefill).
  double bandwidth_efficiency = 0;
  double compute_efficiency = 0;
  std::vector<Projection> projections;

  nlohmann::ordered_json to_json() const;
  /// Reads a report written by to_json; FormatError naming `where` when it is not one.
  static BenchReport from_json(const nlohmann::json& j, const std::string& where);
};

/// Loads every model (as load_model_for_inference does, with options.kernels), measures them
/// interleaved, and projects each onto `devices`. Progress goes to the log.
BenchReport run_bench(const std::vector<std::string>& models, const BenchOptions& options,
                      const std::vector<DeviceProfile>& devices);

/// The roofline projections of `report`'s measured models onto its devices (run_bench calls it;
/// exposed for tests).
std::vector<Projection> project(const BenchReport& report);

}  // namespace stunt::bench
