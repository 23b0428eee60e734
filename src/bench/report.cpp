#include "stunt/bench/report.h"

#include <cstdio>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "detail/bar_chart.h"
#include "stunt/core/error.h"

namespace stunt::bench {
namespace {

using Json = nlohmann::ordered_json;

std::string fixed(double v, int digits) {
  char text[64];
  std::snprintf(text, sizeof text, "%.*f", digits, v);
  return text;
}

std::string base64(const std::string& bytes) {
  static const char* kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const uint32_t v = (static_cast<uint8_t>(bytes[i]) << 16) |
                       (static_cast<uint8_t>(bytes[i + 1]) << 8) |
                       static_cast<uint8_t>(bytes[i + 2]);
    for (int s = 18; s >= 0; s -= 6) out.push_back(kAlphabet[(v >> s) & 63]);
  }
  if (i < bytes.size()) {
    uint32_t v = static_cast<uint8_t>(bytes[i]) << 16;
    if (i + 1 < bytes.size()) v |= static_cast<uint8_t>(bytes[i + 1]) << 8;
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(i + 1 < bytes.size() ? kAlphabet[(v >> 6) & 63] : '=');
    out.push_back('=');
  }
  return out;
}

std::string escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '<')
      out += "&lt;";
    else if (c == '>')
      out += "&gt;";
    else if (c == '&')
      out += "&amp;";
    else
      out.push_back(c);
  }
  return out;
}

/// An <img> of the chart with its legend underneath.
std::string chart_html(const std::string& title, const detail::BarChart& chart,
                       const std::string& axis) {
  std::ostringstream html;
  html << "<h3>" << escape(title) << "</h3>\n<img alt=\"" << escape(title)
       << "\" src=\"data:image/png;base64," << base64(detail::bar_chart_png(chart)) << "\">\n"
       << "<p class=\"legend\">Groups, left to right: ";
  for (size_t g = 0; g < chart.groups.size(); ++g) {
    html << (g ? ", " : "") << escape(chart.groups[g]);
  }
  html << ". Bars: ";
  for (size_t s = 0; s < chart.series.size(); ++s) {
    html << "<span style=\"color:" << detail::series_color(s) << "\">&#9632; "
         << escape(chart.series[s].name) << "</span> ";
  }
  html << ". Height: " << escape(axis) << " (tables give the values).</p>\n";
  return html.str();
}

std::string table_html(const std::vector<std::vector<std::string>>& rows) {
  std::ostringstream html;
  html << "<table>\n";
  for (size_t r = 0; r < rows.size(); ++r) {
    html << "<tr>";
    for (const std::string& cell : rows[r]) {
      html << (r == 0 ? "<th>" : "<td>") << escape(cell) << (r == 0 ? "</th>" : "</td>");
    }
    html << "</tr>\n";
  }
  html << "</table>\n";
  return html.str();
}

std::string table_text(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width;
  for (const auto& row : rows) {
    width.resize(std::max(width.size(), row.size()));
    for (size_t c = 0; c < row.size(); ++c) width[c] = std::max(width[c], row[c].size());
  }
  std::ostringstream out;
  for (size_t r = 0; r < rows.size(); ++r) {
    for (size_t c = 0; c < rows[r].size(); ++c) {
      out << (c ? "  " : "") << rows[r][c] << std::string(width[c] - rows[r][c].size(), ' ');
    }
    out << "\n";
    if (r == 0) {
      for (size_t c = 0; c < width.size(); ++c)
        out << (c ? "  " : "") << std::string(width[c], '-');
      out << "\n";
    }
  }
  return out.str();
}

std::vector<std::vector<std::string>> measured_rows(const BenchReport& r) {
  std::vector<std::vector<std::string>> rows = {{"model", "kernels", "batch", "prefill tok/s",
                                                 "TTFT ms", "decode tok/s", "p50 ms/token",
                                                 "p99 ms/token", "weights MiB", "resident MiB",
                                                 "bandwidth share", "perplexity", "quality delta"}};
  for (const ModelMeasurement& m : r.models) {
    std::string kernels;
    for (const auto& [k, n] : m.kernels)
      kernels += (kernels.empty() ? "" : ", ") + std::to_string(n) + " " + k;
    if (kernels.empty()) kernels = "dense";
    for (const BatchTiming& t : m.batches) {
      rows.push_back({m.path, kernels, std::to_string(t.batch), fixed(t.prefill_tokens_per_s, 1),
                      fixed(t.ttft_s * 1e3, 1), fixed(t.decode_tokens_per_s, 1),
                      fixed(t.token_p50_s * 1e3, 2), fixed(t.token_p99_s * 1e3, 2),
                      fixed(static_cast<double>(m.weight_bytes) / (1 << 20), 1),
                      fixed(static_cast<double>(m.resident_bytes) / (1 << 20), 1),
                      t.batch == 1 ? fixed(m.bandwidth_share * 100, 1) + "%" : "",
                      m.perplexity ? fixed(*m.perplexity, 3) : "-",
                      m.quality_delta ? fixed(*m.quality_delta * 100, 2) + "%" : "-"});
    }
  }
  return rows;
}

std::vector<std::vector<std::string>> projection_rows(const BenchReport& r) {
  std::vector<std::vector<std::string>> rows = {{"model", "device", "batch", "prefill tok/s",
                                                 "decode tok/s", "$ per 1M tokens", "bound",
                                                 "how"}};
  for (const Projection& p : r.projections) {
    rows.push_back({p.model, p.device, std::to_string(p.batch),
                    p.prefill_tokens_per_s > 0 ? fixed(p.prefill_tokens_per_s, 1) : "-",
                    fixed(p.decode_tokens_per_s, 1),
                    p.cost_per_million_tokens > 0 ? fixed(p.cost_per_million_tokens, 4) : "-",
                    p.bound, p.measured ? "measured here" : "projected"});
  }
  return rows;
}

Json timing_json(const BatchTiming& t) {
  return {{"batch", t.batch},
          {"ttft_s", t.ttft_s},
          {"prefill_tokens_per_s", t.prefill_tokens_per_s},
          {"decode_tokens_per_s", t.decode_tokens_per_s},
          {"token_p50_s", t.token_p50_s},
          {"token_p99_s", t.token_p99_s}};
}

template <typename T>
T field(const nlohmann::json& j, const char* key, const std::string& where) {
  STUNT_CHECK_AS(FormatError, j.is_object() && j.contains(key), where, ": missing \"", key, "\"");
  try {
    return j[key].get<T>();
  } catch (const nlohmann::json::exception&) {
    throw FormatError(str(where, ": \"", key, "\" has the wrong type (", j[key].dump(), ")"));
  }
}

std::string machine_line(const Machine& m) {
  return str(m.cpu, " (", m.isa, "), ", m.threads, " threads, ", fixed(m.bandwidth_gbps, 1),
             " GB/s read, ", fixed(m.fp32_gflops, 1), " GFLOPS fp32, ", m.date);
}

const char* kStyle =
    "<style>body{font-family:sans-serif;margin:2em;max-width:1100px}table{border-collapse:"
    "collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
    "th{background:#f2f2f2}td:first-child{text-align:left}.legend{font-size:90%}</style>\n";

}  // namespace

nlohmann::ordered_json BenchReport::to_json() const {
  Json models_json = Json::array();
  for (const ModelMeasurement& m : models) {
    Json batches_json = Json::array();
    for (const BatchTiming& t : m.batches) batches_json.push_back(timing_json(t));
    Json kernels_json = Json::object();
    for (const auto& [k, n] : m.kernels) kernels_json[k] = n;
    models_json.push_back({{"path", m.path},
                           {"parameters", m.parameters},
                           {"weight_bytes", m.weight_bytes},
                           {"device_weight_bytes", m.device_weight_bytes},
                           {"kv_bytes_per_token", m.kv_bytes_per_token},
                           {"resident_bytes", m.resident_bytes},
                           {"kernels", kernels_json},
                           {"compute_type", m.compute_type},
                           {"batches", batches_json},
                           {"perplexity", m.perplexity ? Json(*m.perplexity) : Json()},
                           {"quality_delta", m.quality_delta ? Json(*m.quality_delta) : Json()},
                           {"decode_bandwidth_gbps", m.decode_bandwidth_gbps},
                           {"bandwidth_share", m.bandwidth_share}});
  }
  Json devices_json = Json::array();
  for (const DeviceProfile& d : devices) devices_json.push_back(d.to_json());
  Json projections_json = Json::array();
  for (const Projection& p : projections) {
    projections_json.push_back({{"model", p.model},
                                {"device", p.device},
                                {"batch", p.batch},
                                {"decode_tokens_per_s", p.decode_tokens_per_s},
                                {"prefill_tokens_per_s", p.prefill_tokens_per_s},
                                {"cost_per_million_tokens", p.cost_per_million_tokens},
                                {"bound", p.bound},
                                {"measured", p.measured}});
  }
  return {{"stunt_bench_report", 1},
          {"machine",
           {{"cpu", machine.cpu},
            {"isa", machine.isa},
            {"threads", machine.threads},
            {"bandwidth_gbps", machine.bandwidth_gbps},
            {"fp32_gflops", machine.fp32_gflops},
            {"date", machine.date}}},
          {"options",
           {{"batches", options.batches},
            {"prompt_len", options.prompt_len},
            {"gen_len", options.gen_len},
            {"repeats", options.repeats},
            {"kernels", options.kernels == quant::KernelMode::Fast ? "fast" : "reference"},
            {"quality_data", options.quality_data.string()},
            {"quality_windows", options.quality_windows},
            {"quality_seq_len", options.quality_seq_len},
            {"cpu_price_per_hour", options.cpu_price_per_hour}}},
          {"models", models_json},
          {"devices", devices_json},
          {"bandwidth_efficiency", bandwidth_efficiency},
          {"compute_efficiency", compute_efficiency},
          {"projections", projections_json}};
}

BenchReport BenchReport::from_json(const nlohmann::json& j, const std::string& where) {
  STUNT_CHECK_AS(FormatError, j.is_object() && j.contains("stunt_bench_report"), where,
                 ": not a report of compress bench (no \"stunt_bench_report\" key); write one "
                 "with compress bench --json FILE");
  BenchReport r;
  const auto& m = j["machine"];
  r.machine.cpu = field<std::string>(m, "cpu", where + " machine");
  r.machine.isa = field<std::string>(m, "isa", where + " machine");
  r.machine.threads = field<int>(m, "threads", where + " machine");
  r.machine.bandwidth_gbps = field<double>(m, "bandwidth_gbps", where + " machine");
  r.machine.fp32_gflops = field<double>(m, "fp32_gflops", where + " machine");
  r.machine.date = field<std::string>(m, "date", where + " machine");
  const auto& o = j["options"];
  r.options.batches = field<std::vector<int64_t>>(o, "batches", where + " options");
  r.options.prompt_len = field<int64_t>(o, "prompt_len", where + " options");
  r.options.gen_len = field<int64_t>(o, "gen_len", where + " options");
  r.options.repeats = field<int>(o, "repeats", where + " options");
  r.options.cpu_price_per_hour = field<double>(o, "cpu_price_per_hour", where + " options");
  for (const auto& mj : field<nlohmann::json>(j, "models", where)) {
    ModelMeasurement mm;
    const std::string at = where + " model";
    mm.path = field<std::string>(mj, "path", at);
    mm.parameters = field<int64_t>(mj, "parameters", at);
    mm.weight_bytes = field<int64_t>(mj, "weight_bytes", at);
    mm.device_weight_bytes = field<int64_t>(mj, "device_weight_bytes", at);
    mm.kv_bytes_per_token = field<int64_t>(mj, "kv_bytes_per_token", at);
    mm.resident_bytes = field<int64_t>(mj, "resident_bytes", at);
    mm.compute_type = field<std::string>(mj, "compute_type", at);
    const nlohmann::json kernels = field<nlohmann::json>(mj, "kernels", at);
    for (const auto& [k, n] : kernels.items()) {
      STUNT_CHECK_AS(FormatError, n.is_number_integer(), at, ": kernels.", k, " is not a count");
      mm.kernels[k] = n.get<int>();
    }
    for (const auto& tj : field<nlohmann::json>(mj, "batches", at)) {
      BatchTiming t;
      t.batch = field<int64_t>(tj, "batch", at);
      t.ttft_s = field<double>(tj, "ttft_s", at);
      t.prefill_tokens_per_s = field<double>(tj, "prefill_tokens_per_s", at);
      t.decode_tokens_per_s = field<double>(tj, "decode_tokens_per_s", at);
      t.token_p50_s = field<double>(tj, "token_p50_s", at);
      t.token_p99_s = field<double>(tj, "token_p99_s", at);
      mm.batches.push_back(t);
    }
    if (mj.contains("perplexity") && mj["perplexity"].is_number())
      mm.perplexity = mj["perplexity"].get<double>();
    if (mj.contains("quality_delta") && mj["quality_delta"].is_number()) {
      mm.quality_delta = mj["quality_delta"].get<double>();
    }
    mm.decode_bandwidth_gbps = field<double>(mj, "decode_bandwidth_gbps", at);
    mm.bandwidth_share = field<double>(mj, "bandwidth_share", at);
    r.models.push_back(mm);
  }
  for (const auto& dj : field<nlohmann::json>(j, "devices", where)) {
    r.devices.push_back(DeviceProfile::from_json(dj, where + " devices"));
  }
  r.bandwidth_efficiency = field<double>(j, "bandwidth_efficiency", where);
  r.compute_efficiency = field<double>(j, "compute_efficiency", where);
  for (const auto& pj : field<nlohmann::json>(j, "projections", where)) {
    Projection p;
    const std::string at = where + " projection";
    p.model = field<std::string>(pj, "model", at);
    p.device = field<std::string>(pj, "device", at);
    p.batch = field<int64_t>(pj, "batch", at);
    p.decode_tokens_per_s = field<double>(pj, "decode_tokens_per_s", at);
    // Reports written before prefill was projected lack it; their tables show "-".
    if (pj.contains("prefill_tokens_per_s")) {
      p.prefill_tokens_per_s = field<double>(pj, "prefill_tokens_per_s", at);
    }
    p.cost_per_million_tokens = field<double>(pj, "cost_per_million_tokens", at);
    p.bound = field<std::string>(pj, "bound", at);
    p.measured = field<bool>(pj, "measured", at);
    r.projections.push_back(p);
  }
  return r;
}

std::string report_table(const BenchReport& r) {
  std::ostringstream out;
  out << "machine: " << machine_line(r.machine) << "\n"
      << "prompt " << r.options.prompt_len << " tokens, " << r.options.gen_len
      << " generated, best of " << r.options.repeats << " interleaved rounds\n\n"
      << table_text(measured_rows(r)) << "\n"
      << "projection: step = max((weight + KV bytes) / (bandwidth x "
      << fixed(r.bandwidth_efficiency, 3) << "), FLOPs / (peak x " << fixed(r.compute_efficiency, 3)
      << ")), efficiencies measured on this machine\n"
      << table_text(projection_rows(r));
  return out.str();
}

std::string report_html(const BenchReport& r) {
  std::ostringstream html;
  html << "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>compress bench</title>\n"
       << kStyle << "</head><body>\n<h1>compress bench</h1>\n<p>Measured on "
       << escape(machine_line(r.machine)) << ". Prompt " << r.options.prompt_len << " tokens, "
       << r.options.gen_len << " generated, best of " << r.options.repeats
       << " interleaved rounds.</p>\n<h2>Measured here</h2>\n"
       << table_html(measured_rows(r));
  detail::BarChart throughput;
  detail::BarChart latency;
  for (int64_t b : r.options.batches) throughput.groups.push_back("batch " + std::to_string(b));
  for (const ModelMeasurement& m : r.models) {
    detail::BarSeries s{m.path, {}};
    for (const BatchTiming& t : m.batches) s.values.push_back(t.decode_tokens_per_s);
    throughput.series.push_back(s);
  }
  latency.groups = {"p50 ms/token (batch " + std::to_string(r.options.batches.front()) + ")",
                    "p99 ms/token"};
  for (const ModelMeasurement& m : r.models) {
    latency.series.push_back(
        {m.path, {m.batches.front().token_p50_s * 1e3, m.batches.front().token_p99_s * 1e3}});
  }
  html << chart_html("Decode throughput by batch size", throughput, "tokens per second")
       << chart_html("Per-token decode latency", latency, "milliseconds");
  html << "<h2>Projected onto devices</h2>\n<p>Each decode step reads every weight once and "
          "each sequence's keys and values, and does two FLOPs per parameter per sequence: "
          "step = max(bytes / (bandwidth &times; "
       << fixed(r.bandwidth_efficiency, 3) << "), FLOPs / (peak &times; "
       << fixed(r.compute_efficiency, 3)
       << ")), the efficiencies those of this machine's run. A prefill of batch &times; "
          "prompt tokens reads the weights once and does two FLOPs per parameter per token, "
          "bounded the same way. Only the local-cpu rows are measured. Kernel-launch and framework "
          "overheads are not modelled, so small models "
          "on fast GPUs are projected above what they reach.</p>\n"
       << table_html(projection_rows(r));
  detail::BarChart cost;
  const int64_t batch = r.options.batches.back();
  std::vector<std::string> devices;
  for (const Projection& p : r.projections) {
    if (p.batch == batch && p.cost_per_million_tokens > 0 &&
        std::find(devices.begin(), devices.end(), p.device) == devices.end()) {
      devices.push_back(p.device);
    }
  }
  cost.groups = devices;
  for (const ModelMeasurement& m : r.models) {
    detail::BarSeries s{m.path, {}};
    for (const std::string& d : devices) {
      double v = 0;
      for (const Projection& p : r.projections) {
        if (p.model == m.path && p.device == d && p.batch == batch) v = p.cost_per_million_tokens;
      }
      s.values.push_back(v);
    }
    cost.series.push_back(s);
  }
  html << chart_html("Cost per million generated tokens at batch " + std::to_string(batch), cost,
                     "US dollars");
  html << "<h2>Device profiles</h2>\n";
  std::vector<std::vector<std::string>> rows = {{"device", "description", "GB/s", "fp16 TFLOPS",
                                                 "int8 TOPS", "$/hour", "price date",
                                                 "price source"}};
  for (const DeviceProfile& d : r.devices) {
    auto peak = [&](const char* type) {
      auto it = d.peak_tflops.find(type);
      return it == d.peak_tflops.end() ? std::string("-") : fixed(it->second, 1);
    };
    rows.push_back({d.name, d.description, fixed(d.bandwidth_gbps, 0), peak("fp16"), peak("int8"),
                    fixed(d.price_per_hour, 3), d.price_date, d.price_source});
  }
  html << table_html(rows) << "</body></html>\n";
  return html.str();
}

BenchReport read_report(const std::filesystem::path& path) {
  std::ifstream in(path);
  STUNT_CHECK_AS(IoError, in.good(), path.string(), ": cannot read the report");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::parse_error& e) {
    throw FormatError(str(path.string(), ": not JSON (", e.what(), ")"));
  }
  return BenchReport::from_json(j, path.string());
}

namespace {

std::vector<std::vector<std::string>> compare_rows(const std::vector<BenchReport>& reports,
                                                   const std::vector<std::string>& names) {
  std::vector<std::vector<std::string>> rows = {{"report", "machine", "model", "batch",
                                                 "prefill tok/s", "decode tok/s", "p50 ms/token",
                                                 "quality delta"}};
  for (size_t i = 0; i < reports.size(); ++i) {
    for (const ModelMeasurement& m : reports[i].models) {
      for (const BatchTiming& t : m.batches) {
        rows.push_back({names[i],
                        reports[i].machine.cpu + " (" + reports[i].machine.isa + ", " +
                            std::to_string(reports[i].machine.threads) + " threads)",
                        m.path, std::to_string(t.batch), fixed(t.prefill_tokens_per_s, 1),
                        fixed(t.decode_tokens_per_s, 1), fixed(t.token_p50_s * 1e3, 2),
                        m.quality_delta ? fixed(*m.quality_delta * 100, 2) + "%" : "-"});
      }
    }
  }
  return rows;
}

}  // namespace

std::string compare_table(const std::vector<BenchReport>& reports,
                          const std::vector<std::string>& names) {
  return table_text(compare_rows(reports, names));
}

std::string compare_html(const std::vector<BenchReport>& reports,
                         const std::vector<std::string>& names) {
  std::ostringstream html;
  html << "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>compress bench compare"
       << "</title>\n"
       << kStyle << "</head><body>\n<h1>compress bench: " << reports.size() << " reports</h1>\n"
       << table_html(compare_rows(reports, names));
  // One bar per (report, model) at each batch size the reports share.
  detail::BarChart chart;
  std::set<int64_t> batches;
  for (const BenchReport& r : reports) {
    for (const ModelMeasurement& m : r.models) {
      for (const BatchTiming& t : m.batches) batches.insert(t.batch);
    }
  }
  for (int64_t b : batches) chart.groups.push_back("batch " + std::to_string(b));
  for (size_t i = 0; i < reports.size(); ++i) {
    for (const ModelMeasurement& m : reports[i].models) {
      detail::BarSeries s{names[i] + ": " + m.path, {}};
      for (int64_t b : batches) {
        double v = 0;
        for (const BatchTiming& t : m.batches) {
          if (t.batch == b) v = t.decode_tokens_per_s;
        }
        s.values.push_back(v);
      }
      chart.series.push_back(s);
    }
  }
  html << chart_html("Decode throughput across reports", chart, "tokens per second")
       << "</body></html>\n";
  return html.str();
}

}  // namespace stunt::bench
