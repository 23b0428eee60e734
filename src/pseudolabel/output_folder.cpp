#include "detail/output_folder.h"

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "stunt/core/error.h"
#include "stunt/core/logging.h"
#include "stunt/core/strings.h"

namespace stunt::pseudolabel::detail {
namespace fs = std::filesystem;
namespace {

/// What differs between a folder's manifest and this job, for the refusal message.
std::vector<std::string> differences(const Manifest& m, const Manifest& now) {
  std::vector<std::string> out;
  if (m.kind != now.kind) out.push_back(str("kind: ", m.kind, " there, ", now.kind, " now"));
  if (m.teacher.value("sha256", "") != now.teacher.value("sha256", "")) {
    out.push_back(str("teacher: ", m.teacher.value("path", "?"), " (sha256 ",
                      m.teacher.value("sha256", "").substr(0, 12), ") there, ",
                      now.teacher.value("path", "?"), " (sha256 ",
                      now.teacher.value("sha256", "").substr(0, 12), ") now"));
  }
  if (m.input.value("sha256", "") != now.input.value("sha256", "")) {
    out.push_back(str("input: ", m.input.value("path", "?"), " (sha256 ",
                      m.input.value("sha256", "").substr(0, 12), ") there, ",
                      now.input.value("path", "?"), " (sha256 ",
                      now.input.value("sha256", "").substr(0, 12), ") now"));
  }
  if (m.shard_size != now.shard_size) {
    out.push_back(str("shard_size: ", m.shard_size, " there, ", now.shard_size, " now"));
  }
  const nlohmann::json patch = nlohmann::json::diff(m.settings, now.settings);
  for (const auto& op : patch) {
    const std::string pointer = op.value("path", "");
    const nlohmann::json::json_pointer p(pointer);
    const std::string there = m.settings.contains(p) ? m.settings.at(p).dump() : "(unset)";
    const std::string here = now.settings.contains(p) ? now.settings.at(p).dump() : "(unset)";
    out.push_back(str(pointer.substr(1), ": ", there, " there, ", here, " now"));
  }
  return out;
}

bool is_temporary(const fs::path& p) {
  const std::string name = p.filename().string();
  return name.rfind('.', 0) == 0 && name.find(".tmp-") != std::string::npos;
}

/// Whether a temporary is this part's to clear: its own shards (index ≡ part_index mod
/// part_count) and its own manifest. Parts run side by side in one folder, so clearing another
/// part's temporary would pull a file from under a writer that is still running.
bool is_own_temporary(const fs::path& p, const Manifest& part) {
  if (part.part_count == 1) return true;
  const std::string name = p.filename().string();
  const std::string target = name.substr(1, name.find(".tmp-") - 1);
  if (target == part.file_name()) return true;
  constexpr std::string_view kShard = "shard-";
  if (target.rfind(kShard, 0) != 0) return false;
  const size_t digits = target.find('.', kShard.size());
  if (digits == std::string::npos) return false;
  try {
    const int64_t index = std::stoll(target.substr(kShard.size(), digits - kShard.size()));
    return index % part.part_count == part.part_index;
  } catch (const std::exception&) {
    return false;
  }
}

bool is_manifest(const fs::path& p) {
  const std::string name = p.filename().string();
  return name == kManifestName ||
         (name.rfind("manifest-part-", 0) == 0 && p.extension() == ".json");
}

bool is_label_file(const fs::path& p) {
  const std::string name = p.filename().string();
  return is_manifest(p) || (name.rfind("shard-", 0) == 0 &&
                            (p.extension() == ".jsonl" || p.extension() == ".safetensors"));
}

}  // namespace

Manifest open_output(const LabelJob& job, const Manifest& fresh) {
  const fs::path& out = job.output;
  if (fs::exists(out)) {
    STUNT_CHECK_AS(ValueError, fs::is_directory(out), out.string(),
                   " exists and is not a folder; give -o a folder for the labels");
    for (const auto& entry : fs::directory_iterator(out)) {
      // A killed run's leftovers; other parts' temporaries may belong to running writers.
      if (is_temporary(entry.path()) && is_own_temporary(entry.path(), fresh)) {
        fs::remove(entry.path());
      }
    }
  } else {
    fs::create_directories(out);
  }
  for (const auto& entry : fs::directory_iterator(out)) {
    STUNT_CHECK_AS(ValueError, is_label_file(entry.path()) || is_temporary(entry.path()),
                   out.string(), " holds ", entry.path().filename().string(),
                   ", which is not part of a label folder; give -o an empty or new folder");
  }
  const fs::path own = out / fresh.file_name();
  if (job.options.restart) {
    for (const auto& entry : fs::directory_iterator(out)) {
      if (fresh.part_count == 1 && is_label_file(entry.path())) fs::remove(entry.path());
    }
    if (fs::exists(own)) fs::remove(own);
    if (fresh.part_count > 1) fs::remove(out / kManifestName);
    log::info("--restart: removed the labels of ", fresh.part_count == 1 ? "the job" : "this part",
              " in ", out.string());
  }
  // Every manifest in the folder (a part's, the merged one) must describe this job.
  for (const auto& entry : fs::directory_iterator(out)) {
    if (!is_manifest(entry.path())) continue;
    const Manifest other = Manifest::read_file(entry.path());
    std::vector<std::string> diff = differences(other, fresh);
    if (other.part_count != fresh.part_count && entry.path().filename() != kManifestName) {
      diff.push_back(str("parts: ", other.part_count, " there, ", fresh.part_count, " now"));
    }
    if (diff.empty()) continue;
    std::string list;
    for (const std::string& d : diff) list += "\n  " + d;
    throw ValueError(str(out.string(), " holds labels of another job (",
                         entry.path().filename().string(), "):", list,
                         "\nrerun with the settings it was started with to continue it, or add "
                         "--restart to delete its labels and start over"));
  }
  if (!fs::exists(own)) return fresh;
  Manifest existing = Manifest::read_file(own);
  for (size_t i = 0; i < existing.shards.size(); ++i) {
    const int64_t expected = fresh.part_index + static_cast<int64_t>(i) * fresh.part_count;
    STUNT_CHECK_AS(FormatError, existing.shards[i].index == expected, own.string(), ": shard ",
                   existing.shards[i].index, " is listed where shard ", expected,
                   " belongs; run `compress label verify`");
  }
  return existing;
}

}  // namespace stunt::pseudolabel::detail
