#include "stunt/bench/device_profile.h"

#include <fstream>

#include "stunt/core/error.h"

namespace stunt::bench {
namespace {

DeviceProfile gpu(std::string name, std::string description, double bandwidth, double memory,
                  std::map<std::string, double> peak, double price, std::string price_source) {
  DeviceProfile p;
  p.name = std::move(name);
  p.description = std::move(description);
  p.bandwidth_gbps = bandwidth;
  p.memory_gib = memory;
  p.peak_tflops = std::move(peak);
  p.price_per_hour = price;
  p.price_date = "2026-12";
  p.price_source = std::move(price_source);
  p.source = "vendor datasheet (dense peaks; sparse = 2:4 tensor cores)";
  return p;
}

}  // namespace

nlohmann::ordered_json DeviceProfile::to_json() const {
  nlohmann::ordered_json peaks = nlohmann::ordered_json::object();
  for (const auto& [type, value] : peak_tflops) peaks[type] = value;
  return {{"name", name},
          {"description", description},
          {"bandwidth_gbps", bandwidth_gbps},
          {"memory_gib", memory_gib},
          {"peak_tflops", peaks},
          {"price_per_hour", price_per_hour},
          {"price_date", price_date},
          {"price_source", price_source},
          {"source", source}};
}

DeviceProfile DeviceProfile::from_json(const nlohmann::json& j, const std::string& where) {
  STUNT_CHECK_AS(FormatError, j.is_object(), where, ": a device profile must be an object");
  auto number = [&](const char* key, bool required) -> double {
    if (!j.contains(key)) {
      STUNT_CHECK_AS(FormatError, !required, where, ": device profile has no \"", key, "\"");
      return 0.0;
    }
    STUNT_CHECK_AS(FormatError, j[key].is_number() && j[key].get<double>() >= 0, where, ": \"", key,
                   "\" must be a non-negative number, got ", j[key].dump());
    return j[key].get<double>();
  };
  auto text = [&](const char* key) -> std::string {
    if (!j.contains(key)) return "";
    STUNT_CHECK_AS(FormatError, j[key].is_string(), where, ": \"", key, "\" must be a string, got ",
                   j[key].dump());
    return j[key].get<std::string>();
  };
  for (const auto& item : j.items()) {
    static const std::vector<std::string> known = {"name",       "description",  "bandwidth_gbps",
                                                   "memory_gib", "peak_tflops",  "price_per_hour",
                                                   "price_date", "price_source", "source"};
    STUNT_CHECK_AS(FormatError, std::find(known.begin(), known.end(), item.key()) != known.end(),
                   where, ": unknown device profile field \"", item.key(),
                   "\"; known: name, description, bandwidth_gbps, memory_gib, peak_tflops, "
                   "price_per_hour, price_date, price_source, source");
  }
  DeviceProfile p;
  p.name = text("name");
  STUNT_CHECK_AS(FormatError, !p.name.empty(), where, ": device profile has no \"name\"");
  const std::string at = where + " (" + p.name + ")";
  p.description = text("description");
  p.bandwidth_gbps = number("bandwidth_gbps", true);
  STUNT_CHECK_AS(FormatError, p.bandwidth_gbps > 0, at, ": bandwidth_gbps must be positive");
  p.memory_gib = number("memory_gib", false);
  p.price_per_hour = number("price_per_hour", true);
  p.price_date = text("price_date");
  p.price_source = text("price_source");
  p.source = text("source");
  STUNT_CHECK_AS(FormatError, j.contains("peak_tflops") && j["peak_tflops"].is_object(), at,
                 ": \"peak_tflops\" must be an object such as {\"fp16\": 125}");
  for (const auto& [type, value] : j["peak_tflops"].items()) {
    STUNT_CHECK_AS(FormatError, value.is_number() && value.get<double>() > 0, at, ": peak_tflops.",
                   type, " must be a positive number, got ", value.dump());
    p.peak_tflops[type] = value.get<double>();
  }
  return p;
}

std::vector<DeviceProfile> builtin_profiles() {
  // Prices: on-demand list prices for one GPU, read 2026-12 (KERNELS.md): g5.xlarge (A10G)
  // about $1.0/h; A10 about $0.75/h at GPU clouds; A100 $1.8-4.1/GPU-h (midpoints taken);
  // H100 about $3.0/GPU-h; H200 capacity blocks about $5.4/GPU-h.
  return {
      gpu("a10", "NVIDIA A10 (24 GB GDDR6, sm86)", 600, 24,
          {{"fp32", 31.2},
           {"fp16", 125},
           {"bf16", 125},
           {"int8", 250},
           {"fp16_sparse", 250},
           {"int8_sparse", 500}},
          0.75, "GPU cloud on-demand, single A10"),
      gpu("a10g", "NVIDIA A10G (24 GB GDDR6, sm86; AWS g5)", 600, 24,
          {{"fp32", 31.2},
           {"fp16", 70},
           {"bf16", 70},
           {"int8", 140},
           {"fp16_sparse", 140},
           {"int8_sparse", 280}},
          1.006, "AWS g5.xlarge on-demand, us-east-1"),
      gpu("a100-40", "NVIDIA A100 40 GB (HBM2, sm80)", 1555, 40,
          {{"fp32", 19.5},
           {"fp16", 312},
           {"bf16", 312},
           {"int8", 624},
           {"fp16_sparse", 624},
           {"int8_sparse", 1248}},
          1.8, "GPU cloud on-demand, single A100 40 GB"),
      gpu("a100-80", "NVIDIA A100 80 GB SXM (HBM2e, sm80)", 2039, 80,
          {{"fp32", 19.5},
           {"fp16", 312},
           {"bf16", 312},
           {"int8", 624},
           {"fp16_sparse", 624},
           {"int8_sparse", 1248}},
          2.9, "GPU cloud on-demand, one GPU of 8"),
      gpu("h100", "NVIDIA H100 SXM (80 GB HBM3, sm90)", 3350, 80,
          {{"fp32", 67},
           {"fp16", 989},
           {"bf16", 989},
           {"int8", 1979},
           {"fp16_sparse", 1979},
           {"int8_sparse", 3958}},
          3.0, "GPU cloud on-demand, one GPU of 8"),
      gpu("h200", "NVIDIA H200 SXM (141 GB HBM3e, sm90)", 4800, 141,
          {{"fp32", 67},
           {"fp16", 989},
           {"bf16", 989},
           {"int8", 1979},
           {"fp16_sparse", 1979},
           {"int8_sparse", 3958}},
          5.4, "capacity block, one GPU of 8"),
  };
}

std::vector<DeviceProfile> read_profiles(const std::filesystem::path& path,
                                         std::vector<DeviceProfile> base) {
  std::ifstream in(path);
  STUNT_CHECK_AS(IoError, in.good(), path.string(), ": cannot read the profiles file");
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(in);
  } catch (const nlohmann::json::parse_error& e) {
    throw FormatError(str(path.string(), ": not JSON (", e.what(), ")"));
  }
  const nlohmann::json list = doc.is_object() && doc.contains("profiles") ? doc["profiles"] : doc;
  STUNT_CHECK_AS(FormatError, list.is_array(), path.string(),
                 ": expected a list of device profiles, or {\"profiles\": [...]}");
  for (size_t i = 0; i < list.size(); ++i) {
    DeviceProfile p = DeviceProfile::from_json(list[i], str(path.string(), " entry ", i));
    bool replaced = false;
    for (DeviceProfile& existing : base) {
      if (existing.name == p.name) {
        existing = p;
        replaced = true;
      }
    }
    if (!replaced) base.push_back(std::move(p));
  }
  return base;
}

const DeviceProfile& find_profile(const std::vector<DeviceProfile>& profiles,
                                  const std::string& name) {
  std::string known;
  for (const DeviceProfile& p : profiles) {
    if (p.name == name) return p;
    known += (known.empty() ? "" : ", ") + p.name;
  }
  throw ValueError(
      str("no device profile \"", name, "\"; known: ", known, " (add one with --profiles FILE)"));
}

}  // namespace stunt::bench
