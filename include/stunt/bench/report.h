#pragma once
/// Bench reports as people read them: a text table, an HTML page with PNG charts (one file,
/// images inline, readable without a server), and several reports from different machines
/// compared in one table and one chart.

#include <filesystem>
#include <string>
#include <vector>

#include "stunt/bench/model_bench.h"

namespace stunt::bench {

/// The measured table (one row per model and batch size) and the projection table.
std::string report_table(const BenchReport& report);

/// The whole report as one HTML page: machine, tables, and charts of decode throughput by
/// batch size, per-token latency (p50, p99), and cost per million tokens per device.
std::string report_html(const BenchReport& report);

/// Reads a report written as JSON by `compress bench --json`; FormatError naming the file when
/// it is not one.
BenchReport read_report(const std::filesystem::path& path);

/// Several reports (machines) side by side: one row per (report, model, batch), and the HTML
/// page holds one chart of decode throughput across them. `names` label the reports.
std::string compare_table(const std::vector<BenchReport>& reports,
                          const std::vector<std::string>& names);
std::string compare_html(const std::vector<BenchReport>& reports,
                         const std::vector<std::string>& names);

}  // namespace stunt::bench
