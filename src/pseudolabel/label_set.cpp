#include "stunt/pseudolabel/label_set.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <fstream>
#include <iomanip>
#include <sstream>

#include "stunt/core/atomic_file.h"
#include "stunt/core/error.h"
#include "stunt/core/sha256.h"
#include "stunt/core/strings.h"
#include "stunt/io/safetensors.h"

namespace stunt::pseudolabel {

std::string shard_stem(int64_t index) {
  std::ostringstream name;
  name << "shard-" << std::setw(6) << std::setfill('0') << index;
  return name.str();
}

nlohmann::json ShardEntry::to_json() const {
  return {{"index", index},     {"first_item", first_item}, {"end_item", end_item},
          {"labeled", labeled}, {"dropped", dropped},       {"truncated", truncated},
          {"files", files}};
}

ShardEntry ShardEntry::from_json(const nlohmann::json& j, const std::string& where) {
  try {
    ShardEntry e;
    e.index = j.at("index").get<int64_t>();
    e.first_item = j.at("first_item").get<int64_t>();
    e.end_item = j.at("end_item").get<int64_t>();
    e.labeled = j.at("labeled").get<int64_t>();
    e.dropped = j.at("dropped").get<std::map<std::string, int64_t>>();
    e.truncated = j.at("truncated").get<int64_t>();
    e.files = j.at("files").get<std::map<std::string, std::string>>();
    return e;
  } catch (const nlohmann::json::exception& ex) {
    throw FormatError(str(where, ": a shard entry is malformed (", ex.what(), ")"));
  }
}

nlohmann::json Manifest::to_json() const {
  nlohmann::json shard_list = nlohmann::json::array();
  for (const ShardEntry& s : shards) shard_list.push_back(s.to_json());
  return {{"format", kLabelFormat},
          {"version", 1},
          {"part", {{"index", part_index}, {"count", part_count}}},
          {"kind", kind},
          {"teacher", teacher},
          {"input", input},
          {"settings", settings},
          {"shard_size", shard_size},
          {"complete", complete},
          {"labeled", labeled()},
          {"dropped", dropped()},
          {"shards", shard_list}};
}

std::string part_manifest_name(int64_t index, int64_t count) {
  std::ostringstream name;
  name << "manifest-part-" << std::setw(5) << std::setfill('0') << index << "-of-" << std::setw(5)
       << std::setfill('0') << count << ".json";
  return name.str();
}

std::string Manifest::file_name() const {
  return part_count == 1 ? kManifestName : part_manifest_name(part_index, part_count);
}

Manifest Manifest::read(const std::filesystem::path& folder) {
  if (!std::filesystem::exists(folder / kManifestName)) {
    for (const auto& entry : std::filesystem::directory_iterator(folder)) {
      STUNT_CHECK_AS(ValueError, entry.path().filename().string().rfind("manifest-part-", 0) != 0,
                     folder.string(),
                     " holds the parts of a split labeling job but no "
                     "manifest.json; run `compress label merge ",
                     folder.string(), "` once every part has finished");
    }
  }
  return read_file(folder / kManifestName);
}

Manifest Manifest::read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  STUNT_CHECK_AS(IoError, in.good(), path.string(), ": cannot be read (no labels here?)");
  nlohmann::json j;
  try {
    in >> j;
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(str(path.string(), ": not valid JSON (", e.what(), ")"));
  }
  STUNT_CHECK_AS(FormatError, j.is_object() && j.value("format", "") == kLabelFormat, path.string(),
                 ": not a Stunt label manifest (\"format\" is not \"", kLabelFormat, "\")");
  STUNT_CHECK_AS(FormatError, j.value("version", 0) == 1, path.string(), ": version ",
                 j.value("version", 0), " is not one this Stunt reads (1)");
  Manifest m;
  try {
    m.kind = j.at("kind").get<std::string>();
    m.teacher = j.at("teacher");
    m.input = j.at("input");
    m.settings = j.at("settings");
    m.shard_size = j.at("shard_size").get<int64_t>();
    m.complete = j.at("complete").get<bool>();
    if (j.contains("part")) {
      m.part_index = j.at("part").at("index").get<int64_t>();
      m.part_count = j.at("part").at("count").get<int64_t>();
    }
    for (const auto& s : j.at("shards"))
      m.shards.push_back(ShardEntry::from_json(s, path.string()));
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(str(path.string(), ": malformed (", e.what(), ")"));
  }
  return m;
}

void Manifest::write(const std::filesystem::path& folder) const {
  write_file_atomic(folder / file_name(), to_json().dump(1) + "\n");
}

Manifest merge_label_parts(const std::filesystem::path& folder) {
  std::vector<Manifest> parts;
  for (const auto& entry : std::filesystem::directory_iterator(folder)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("manifest-part-", 0) == 0 && entry.path().extension() == ".json") {
      parts.push_back(Manifest::read_file(entry.path()));
    }
  }
  STUNT_CHECK_AS(ValueError, !parts.empty(), folder.string(),
                 ": no part manifests (manifest-part-*.json) to merge");
  const Manifest& first = parts.front();
  std::vector<bool> present(static_cast<size_t>(first.part_count), false);
  Manifest merged = first;
  merged.part_index = 0;
  merged.part_count = 1;
  merged.shards.clear();
  for (const Manifest& p : parts) {
    STUNT_CHECK_AS(ValueError,
                   p.part_count == first.part_count && p.kind == first.kind &&
                       p.teacher == first.teacher && p.input == first.input &&
                       p.settings == first.settings && p.shard_size == first.shard_size,
                   folder.string(), ": ", p.file_name(), " is a part of another job than ",
                   first.file_name(), "; remove the stray part or relabel it");
    STUNT_CHECK_AS(ValueError, p.complete, folder.string(), ": ", p.file_name(),
                   " has not finished (", p.shards.size(),
                   " shards so far); run that part again to finish it, then merge");
    present[static_cast<size_t>(p.part_index)] = true;
    merged.shards.insert(merged.shards.end(), p.shards.begin(), p.shards.end());
  }
  for (size_t i = 0; i < present.size(); ++i) {
    STUNT_CHECK_AS(ValueError, present[i], folder.string(), ": ",
                   part_manifest_name(i, first.part_count), " is missing; run part ", i, " of ",
                   first.part_count, " (--shard-index ", i, "), then merge");
  }
  std::sort(merged.shards.begin(), merged.shards.end(),
            [](const ShardEntry& a, const ShardEntry& b) { return a.index < b.index; });
  for (size_t i = 0; i < merged.shards.size(); ++i) {
    STUNT_CHECK_AS(FormatError, merged.shards[i].index == static_cast<int64_t>(i), folder.string(),
                   ": shard ", i, " is listed by no part, or twice");
  }
  const int64_t items = first.input.value("items", int64_t{0});
  const int64_t expected = (items + first.shard_size - 1) / first.shard_size;
  STUNT_CHECK_AS(FormatError, static_cast<int64_t>(merged.shards.size()) == expected,
                 folder.string(), ": the parts list ", merged.shards.size(),
                 " shards, the input's ", items, " items make ", expected);
  merged.complete = true;
  merged.write(folder);
  return merged;
}

int64_t Manifest::labeled() const {
  int64_t n = 0;
  for (const ShardEntry& s : shards) n += s.labeled;
  return n;
}

std::map<std::string, int64_t> Manifest::dropped() const {
  std::map<std::string, int64_t> out;
  for (const ShardEntry& s : shards) {
    for (const auto& [reason, n] : s.dropped) out[reason] += n;
  }
  return out;
}

namespace {

std::vector<nlohmann::json> read_jsonl(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  STUNT_CHECK_AS(IoError, in.good(), path.string(), ": cannot be read");
  std::vector<nlohmann::json> out;
  std::string line;
  int64_t number = 0;
  while (std::getline(in, line)) {
    ++number;
    try {
      out.push_back(nlohmann::json::parse(line));
    } catch (const nlohmann::json::exception& e) {
      throw FormatError(str(path.string(), ":", number, ": not valid JSON (", e.what(), ")"));
    }
  }
  return out;
}

}  // namespace

std::vector<std::string> verify_labels(const std::filesystem::path& folder) {
  std::vector<std::string> problems;
  const Manifest m = Manifest::read(folder);
  int64_t expected_first = 0;
  for (const ShardEntry& s : m.shards) {
    const std::string shard = shard_stem(s.index);
    if (s.first_item != s.index * m.shard_size || s.end_item < s.first_item ||
        s.end_item - s.first_item > m.shard_size) {
      problems.push_back(str(shard, ": item range [", s.first_item, ", ", s.end_item,
                             ") does not fit shard size ", m.shard_size));
    }
    if (s.first_item < expected_first) {
      problems.push_back(str(shard, ": listed out of order or twice"));
    }
    expected_first = s.end_item;
    bool files_ok = true;
    for (const auto& [name, hash] : s.files) {
      const std::filesystem::path path = folder / name;
      if (!std::filesystem::is_regular_file(path)) {
        problems.push_back(str(name, ": missing"));
        files_ok = false;
      } else if (sha256_file(path) != hash) {
        problems.push_back(str(name,
                               ": its SHA-256 differs from the manifest's (changed or "
                               "damaged after it was written)"));
        files_ok = false;
      }
    }
    if (!files_ok) continue;
    const auto lines = read_jsonl(folder / (shard + ".jsonl"));
    if (static_cast<int64_t>(lines.size()) != s.labeled) {
      problems.push_back(
          str(shard, ".jsonl: ", lines.size(), " lines, the manifest says ", s.labeled));
    }
    // Per-position tensors (logits): each line names its rows by offset and count, in order.
    int64_t rows = s.labeled;
    if (!lines.empty() && lines.front().contains("positions")) {
      rows = 0;
      for (const auto& line : lines) {
        if (line.value("offset", int64_t{-1}) != rows) {
          problems.push_back(str(shard, ".jsonl: item ", line.value("index", int64_t{-1}),
                                 " has offset ", line.value("offset", int64_t{-1}),
                                 ", the rows before it end at ", rows));
          break;
        }
        rows += line.value("positions", int64_t{0});
      }
    }
    int64_t previous = s.first_item - 1;
    for (const auto& line : lines) {
      const int64_t index = line.value("index", int64_t{-1});
      if (index <= previous || index >= s.end_item) {
        problems.push_back(str(shard, ".jsonl: item index ", index, " is out of order or outside [",
                               s.first_item, ", ", s.end_item, ")"));
        break;
      }
      previous = index;
    }
    const std::filesystem::path tensors = folder / (shard + ".safetensors");
    if (s.files.count(shard + ".safetensors")) {
      const auto file = io::SafetensorsFile::open(tensors);  // the tensors alias its mapping
      for (const auto& [name, t] : file->tensors()) {
        if (t.dim() == 0 || t.size(0) != rows) {
          problems.push_back(str(shard, ".safetensors: tensor ", name, " has ",
                                 t.dim() ? t.size(0) : 0, " rows, its lines need ", rows));
        }
      }
    }
  }
  return problems;
}

LabelSet::LabelSet(const std::filesystem::path& folder, bool allow_incomplete)
    : folder_(folder), manifest_(Manifest::read(folder)) {
  STUNT_CHECK_AS(ValueError, manifest_.complete || allow_incomplete, folder.string(),
                 ": the labeling job is not finished (", manifest_.shards.size(),
                 " shards so far); run the same `compress label` command again to finish it");
}

void LabelSet::for_each(const std::function<void(const LabeledItem&)>& visit) const {
  for (const ShardEntry& s : manifest_.shards) {
    const std::string shard = shard_stem(s.index);
    const auto lines = read_jsonl(folder_ / (shard + ".jsonl"));
    STUNT_CHECK_AS(FormatError, static_cast<int64_t>(lines.size()) == s.labeled,
                   (folder_ / (shard + ".jsonl")).string(), ": ", lines.size(),
                   " lines, the manifest says ", s.labeled, "; run `compress label verify`");
    std::vector<io::NamedTensor> tensors;
    std::shared_ptr<io::SafetensorsFile> file;  // kept open: the tensors alias its mapping
    if (s.files.count(shard + ".safetensors")) {
      file = io::SafetensorsFile::open(folder_ / (shard + ".safetensors"));
      tensors = file->tensors();
    }
    for (size_t r = 0; r < lines.size(); ++r) {
      LabeledItem item;
      item.record = lines[r];
      const bool per_position = item.record.contains("positions");
      for (const auto& [name, t] : tensors) {
        item.tensors[name] = per_position ? t.narrow(0, item.record.at("offset").get<int64_t>(),
                                                     item.record.at("positions").get<int64_t>())
                                          : t[static_cast<int64_t>(r)];
      }
      visit(item);
    }
  }
}

std::vector<LabeledItem> LabelSet::all() const {
  std::vector<LabeledItem> out;
  for_each([&](const LabeledItem& item) {
    LabeledItem copy = item;
    for (auto& [name, t] : copy.tensors) t = t.clone();
    out.push_back(std::move(copy));
  });
  return out;
}

}  // namespace stunt::pseudolabel
