// compress bench: models side by side on this machine, projected onto device profiles;
// compress bench compare: reports from several machines in one table and one chart.
#include <ATen/Parallel.h>

#include <iostream>
#include <sstream>

#include "commands.h"
#include "stunt/bench/device_profile.h"
#include "stunt/bench/model_bench.h"
#include "stunt/bench/report.h"
#include "stunt/core/atomic_file.h"
#include "stunt/core/error.h"
#include "stunt/kernels/cuda_device.h"

namespace compress {
namespace {

struct BenchCommand {
  std::vector<std::string> models;
  std::vector<int64_t> batches{1};
  stunt::bench::BenchOptions options;
  std::string kernels = "fast";
  std::string device = "cpu";
  int threads = 0;
  std::string json;
  std::string html;
  std::string profiles;
  std::vector<std::string> devices;
  // compare
  std::vector<std::string> reports;
  std::vector<std::string> names;
};

std::vector<stunt::bench::DeviceProfile> chosen_profiles(const BenchCommand& c) {
  std::vector<stunt::bench::DeviceProfile> all = stunt::bench::builtin_profiles();
  if (!c.profiles.empty()) all = stunt::bench::read_profiles(c.profiles, std::move(all));
  if (c.devices.empty()) return all;
  std::vector<stunt::bench::DeviceProfile> chosen;
  for (const std::string& name : c.devices) chosen.push_back(stunt::bench::find_profile(all, name));
  return chosen;
}

int run_bench(BenchCommand& c) {
  if (c.device == "cuda") {
    const int count = stunt::kernels::cuda_device_count();
    STUNT_CHECK_AS(ValueError, count > 0, "--device cuda: no CUDA device is visible here (", count,
                   " found); run on a machine with a GPU, or use --device cpu");
    throw stunt::NotImplementedError(
        "--device cuda: the model runtime runs on the CPU; GPU kernel benchmarks are "
        "benchmarks/gpu/run.sh. Use --device cpu");
  }
  STUNT_CHECK_AS(ValueError, !c.models.empty(), "compress bench needs one or more MODELs");
  if (c.threads > 0) at::set_num_threads(c.threads);
  c.options.batches = c.batches;
  c.options.kernels = stunt::quant::parse_kernel_mode(c.kernels, "--kernels");
  const auto profiles = chosen_profiles(c);
  const stunt::bench::BenchReport report = stunt::bench::run_bench(c.models, c.options, profiles);
  std::cout << stunt::bench::report_table(report);
  if (!c.json.empty()) {
    stunt::write_file_atomic(c.json, report.to_json().dump(2) + "\n");
    std::cout << "report: " << c.json << "\n";
  }
  if (!c.html.empty()) {
    stunt::write_file_atomic(c.html, stunt::bench::report_html(report));
    std::cout << "html: " << c.html << "\n";
  }
  return 0;
}

int run_compare(const BenchCommand& c) {
  STUNT_CHECK_AS(ValueError, !c.reports.empty(),
                 "compress bench compare needs one or more REPORT.json files");
  STUNT_CHECK_AS(ValueError, c.names.empty() || c.names.size() == c.reports.size(),
                 "--names gives ", c.names.size(), " names for ", c.reports.size(),
                 " reports; give one per report or none");
  std::vector<stunt::bench::BenchReport> reports;
  for (const std::string& path : c.reports) reports.push_back(stunt::bench::read_report(path));
  std::vector<std::string> names = c.names.empty() ? c.reports : c.names;
  std::cout << stunt::bench::compare_table(reports, names);
  if (!c.html.empty()) {
    stunt::write_file_atomic(c.html, stunt::bench::compare_html(reports, names));
    std::cout << "html: " << c.html << "\n";
  }
  return 0;
}

}  // namespace

Runner add_bench(CLI::App& app) {
  auto* cmd =
      app.add_subcommand("bench",
                         "Time models side by side (prefill, decode, latency, memory, quality) and "
                         "project speed and cost onto device profiles");
  auto c = std::make_shared<BenchCommand>();
  auto& o = c->options;
  cmd->add_option("MODEL", c->models, "Models to compare; the first is the baseline");
  cmd->add_option("--batch", c->batches, "Batch sizes, e.g. 1,4,16")
      ->delimiter(',')
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--prompt-len", o.prompt_len, "Prompt tokens (prefill)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--gen-len", o.gen_len, "Generated tokens (decode)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--repeats", o.repeats, "Interleaved rounds; the best counts")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--threads", c->threads, "CPU threads (default: LibTorch's choice)");
  cmd->add_option("--device", c->device, "cpu or cuda")
      ->check(CLI::IsMember({"cpu", "cuda"}))
      ->capture_default_str();
  cmd->add_option("--kernels", c->kernels, "fast (packed int4/int8 kernels) or reference")
      ->capture_default_str();
  cmd->add_option("--quality-data", o.quality_data,
                  "Text file for perplexity (e.g. data/wikitext-2/test.txt); none: no quality");
  cmd->add_option("--quality-windows", o.quality_windows, "Windows of that file to score")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--quality-seq-len", o.quality_seq_len, "Tokens per window")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--profiles", c->profiles,
                  "JSON device profiles that replace or add to the built-in ones");
  cmd->add_option("--devices", c->devices, "Profiles to project onto (default: all)")
      ->delimiter(',');
  cmd->add_option("--cpu-price-per-hour", o.cpu_price_per_hour,
                  "This machine's price in $/hour, for its own cost per million tokens")
      ->capture_default_str();
  cmd->add_option("--json", c->json, "Write the report as JSON");
  cmd->add_option("--html", c->html, "Write the report as an HTML page with charts");

  auto* compare = cmd->add_subcommand("compare", "Put reports from several machines side by side");
  compare->add_option("REPORT", c->reports, "Reports written by compress bench --json")->required();
  compare->add_option("--names", c->names, "A name per report (default: the file names)")
      ->delimiter(',');
  compare->add_option("--html", c->html, "Write the comparison as an HTML page with a chart");
  return [c, compare] {
    if (compare->parsed()) return run_compare(*c);
    return run_bench(*c);
  };
}

}  // namespace compress
