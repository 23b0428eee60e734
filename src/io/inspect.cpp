#include "stunt/io/inspect.h"

#include <algorithm>
#include <cstdio>

#include "stunt/core/error.h"
#include "stunt/core/progress.h"
#include "stunt/io/checkpoint.h"
#include "stunt/kernels/count_zeros.h"
#include "stunt/kernels/sparsity_pattern.h"

namespace stunt::io {
namespace {

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) out += (i ? ", " : "") + std::to_string(shape[i]);
  return out + "]";
}

std::string percent(uint64_t part, uint64_t whole) {
  if (whole == 0) return "0.00%";
  char text[16];
  std::snprintf(text, sizeof(text), "%.2f%%", 100.0 * static_cast<double>(part) / whole);
  return text;
}

}  // namespace

std::string human_bytes(uint64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double value = static_cast<double>(bytes);
  int unit = 0;
  while (value >= 1024 && unit < 4) {
    value /= 1024;
    ++unit;
  }
  char text[32];
  std::snprintf(text, sizeof(text), unit == 0 ? "%.0f %s" : "%.1f %s", value, units[unit]);
  return text;
}

InspectReport inspect(const std::filesystem::path& path, const InspectOptions& options) {
  const auto checkpoint = Checkpoint::open(path);
  InspectReport report;
  report.path = path;
  report.format = format_name(checkpoint->format());
  report.metadata = checkpoint->metadata();
  uint64_t data_bytes = 0;
  for (const auto& e : checkpoint->entries()) data_bytes += e.nbytes;
  Progress progress("inspect", static_cast<int64_t>(data_bytes / (1 << 20)),
                    ProgressOptions{.unit = "MiB"});
  for (const auto& entry : checkpoint->entries()) {
    TensorReport t{entry, std::nullopt, ""};
    report.total_numel += entry.numel;
    report.total_bytes += entry.nbytes;
    if (options.sparsity && entry.dtype != "F6_E2M3" && entry.dtype != "F6_E3M2") {
      const at::Tensor tensor = checkpoint->load(entry.name);
      t.zeros = static_cast<uint64_t>(kernels::count_zeros(tensor));
      // Only a tensor at least a quarter zero can follow 2:4 or 4:8.
      if (*t.zeros * 4 >= entry.numel && entry.numel > 0)
        t.pattern = kernels::n_of_m_pattern(tensor);
      report.total_zeros += *t.zeros;
      report.counted_numel += entry.numel;
    }
    report.tensors.push_back(std::move(t));
    progress.advance(static_cast<int64_t>(entry.nbytes >> 20));
  }
  return report;
}

nlohmann::ordered_json InspectReport::to_json() const {
  nlohmann::ordered_json out;
  out["path"] = path.string();
  out["format"] = format;
  out["metadata"] = metadata;
  out["tensors"] = nlohmann::ordered_json::array();
  for (const auto& [t, zeros, pattern] : tensors) {
    nlohmann::ordered_json row;
    row["name"] = t.name;
    row["dtype"] = t.dtype;
    row["shape"] = t.shape;
    row["numel"] = t.numel;
    row["bytes"] = t.nbytes;
    if (zeros) {
      row["zeros"] = *zeros;
      row["sparsity"] = t.numel ? static_cast<double>(*zeros) / t.numel : 0.0;
    } else {
      row["zeros"] = nullptr;
      row["sparsity"] = nullptr;
    }
    row["pattern"] = pattern.empty() ? nlohmann::ordered_json() : nlohmann::ordered_json(pattern);
    out["tensors"].push_back(row);
  }
  out["totals"] = {
      {"tensors", tensors.size()},
      {"numel", total_numel},
      {"bytes", total_bytes},
      {"zeros", total_zeros},
      {"sparsity", counted_numel ? static_cast<double>(total_zeros) / counted_numel : 0.0}};
  return out;
}

std::string InspectReport::to_table() const {
  size_t name_width = 4, dtype_width = 5, shape_width = 5;
  for (const auto& [t, zeros, pattern] : tensors) {
    name_width = std::max(name_width, t.name.size());
    dtype_width = std::max(dtype_width, t.dtype.size());
    shape_width = std::max(shape_width, shape_text(t.shape).size());
  }
  name_width = std::min<size_t>(name_width, 80);
  auto pad = [](std::string text, size_t width) {
    if (text.size() < width) text.append(width - text.size(), ' ');
    return text;
  };
  auto lpad = [](std::string text, size_t width) {
    return text.size() < width ? std::string(width - text.size(), ' ') + text : text;
  };
  std::string out = str(path.string(), " (", format, ")\n");
  for (const auto& [key, value] : metadata) out += str("  metadata ", key, " = ", value, "\n");
  out += pad("name", name_width) + "  " + pad("dtype", dtype_width) + "  " +
         pad("shape", shape_width) + "  " + lpad("bytes", 10) + "  " + lpad("sparsity", 8) +
         "  N:M\n";
  for (const auto& [t, zeros, pattern] : tensors) {
    out += pad(t.name, name_width) + "  " + pad(t.dtype, dtype_width) + "  " +
           pad(shape_text(t.shape), shape_width) + "  " + lpad(human_bytes(t.nbytes), 10) + "  " +
           lpad(zeros ? percent(*zeros, t.numel) : "-", 8) + "  " +
           (pattern.empty() ? "-" : pattern) + "\n";
  }
  out += str("total: ", tensors.size(), " tensors, ", total_numel, " elements, ",
             human_bytes(total_bytes), " (", total_bytes, " bytes), sparsity ",
             counted_numel ? percent(total_zeros, counted_numel) : "-", "\n");
  return out;
}

}  // namespace stunt::io
