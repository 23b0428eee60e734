#pragma once
/// Devices a benchmark projects onto: memory bandwidth, peak arithmetic per data type, memory,
/// and a dated price per hour. Vendor figures and prices move; they are inputs, printed beside
/// every projection, and a profiles file (read_profiles) replaces or adds any of them.

#include <nlohmann/json.hpp>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace stunt::bench {

struct DeviceProfile {
  /// Short name used on the command line and in reports: "a10", "a100-80", "local-cpu".
  std::string name;
  /// What it is, in words.
  std::string description;
  /// Peak memory bandwidth, GB/s.
  double bandwidth_gbps = 0;
  /// Device memory, GiB.
  double memory_gib = 0;
  /// Peak dense arithmetic in TFLOPS (TOPS for integers) by data type: "fp32", "fp16", "bf16",
  /// "int8", and the 2:4-sparse "fp16_sparse", "int8_sparse" where the device has them.
  std::map<std::string, double> peak_tflops;
  /// US dollars per hour of one device, and when and where that price was read.
  double price_per_hour = 0;
  std::string price_date;
  std::string price_source;
  /// Where the other figures come from ("vendor datasheet", "measured on this machine").
  std::string source;

  nlohmann::ordered_json to_json() const;
  /// Reads a profile; ValueError naming `where` and the field on a missing or bad field.
  static DeviceProfile from_json(const nlohmann::json& j, const std::string& where);
};

/// A10, A10G, A100-40, A100-80, H100 (SXM), H200: vendor datasheet figures and 2026 cloud
/// prices.
std::vector<DeviceProfile> builtin_profiles();

/// Profiles from a JSON file: {"profiles": [{...}, ...]} or a list. Each replaces the built-in
/// profile of its name or adds one. FormatError naming the file and entry when malformed.
std::vector<DeviceProfile> read_profiles(const std::filesystem::path& path,
                                         std::vector<DeviceProfile> base);

/// The profile called `name`; ValueError listing the known names otherwise.
const DeviceProfile& find_profile(const std::vector<DeviceProfile>& profiles,
                                  const std::string& name);

}  // namespace stunt::bench
