#pragma once
/// A folder of pseudo-labels as `compress label` writes it, and reading it back.
///
///   LABELS/manifest.json          the job (teacher, kind, settings, input) and finished shards
///   LABELS/shard-000000.jsonl     one line per labeled item, in input order: index, id, and
///                                 the label's text fields (generation, token log-probabilities)
///   LABELS/shard-000000.safetensors  the label's tensors, row r for the r-th line (embed,
///                                 classify)
///
/// Shard s covers input items [s · shard_size, (s + 1) · shard_size); items skipped (too long,
/// duplicates, filtered) are counted in its entry but not written. Every file is written under a
/// temporary name and renamed, the manifest last, so a shard the manifest lists is complete.

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <nlohmann/json.hpp>

namespace stunt::pseudolabel {

inline constexpr const char* kManifestName = "manifest.json";
inline constexpr const char* kLabelFormat = "stunt-pseudolabels";

/// What a shard's entry in the manifest records.
struct ShardEntry {
  int64_t index = 0;
  /// Input items [first_item, end_item) belong to this shard.
  int64_t first_item = 0;
  int64_t end_item = 0;
  /// Items written (lines in its JSONL).
  int64_t labeled = 0;
  /// Items read but not written, by reason: "too_long", "duplicate", "filtered:<name>".
  std::map<std::string, int64_t> dropped;
  int64_t truncated = 0;
  /// File name → SHA-256 of its bytes.
  std::map<std::string, std::string> files;

  nlohmann::json to_json() const;
  static ShardEntry from_json(const nlohmann::json& j, const std::string& where);
};

/// The manifest: the job's identity (kind, teacher, input, settings) and its finished shards.
struct Manifest {
  std::string kind;
  nlohmann::json teacher;   // {"path", "sha256"}
  nlohmann::json input;     // {"path", "bytes", "sha256", "items"}
  nlohmann::json settings;  // every option that changes the labels
  int64_t shard_size = 0;
  /// A job split over processes or machines: this part labels the shards s with
  /// s % part_count == part_index, into its own manifest (part_manifest_name); merge_label_parts
  /// joins the parts' manifests into manifest.json.
  int64_t part_index = 0;
  int64_t part_count = 1;
  std::vector<ShardEntry> shards;
  bool complete = false;

  nlohmann::json to_json() const;
  /// FormatError naming the file for anything that is not a Stunt label manifest.
  static Manifest read(const std::filesystem::path& folder);
  static Manifest read_file(const std::filesystem::path& path);
  /// Atomically (temporary name, rename), as file_name() in `folder`.
  void write(const std::filesystem::path& folder) const;
  /// manifest.json, or the part's manifest when the job is split.
  std::string file_name() const;
  /// Items written over all shards, and dropped by reason.
  int64_t labeled() const;
  std::map<std::string, int64_t> dropped() const;
};

/// "manifest-part-00001-of-00004.json" for part index 1 of 4.
std::string part_manifest_name(int64_t index, int64_t count);

/// `compress label merge`: the parts' manifests of a split job, each complete and of the same
/// job, joined into manifest.json (complete, every shard listed once). ValueError naming the
/// missing, unfinished or mismatched parts.
Manifest merge_label_parts(const std::filesystem::path& folder);

/// `compress label verify`: every shard the manifest lists exists with the recorded hash, its
/// JSONL has `labeled` lines with indices inside its range in increasing order, and its tensors
/// have `labeled` rows. Returns the problems found (empty: all good).
std::vector<std::string> verify_labels(const std::filesystem::path& folder);

/// One labeled item read back.
struct LabeledItem {
  /// The JSONL line: index, id, and the kind's fields.
  nlohmann::json record;
  /// The kind's tensors, row for this item (embedding [dim], probabilities [classes]).
  std::map<std::string, at::Tensor> tensors;
};

/// A finished label folder, read shard by shard (only one shard's tensors in memory at a time
/// by for_each). Refuses an incomplete job unless `allow_incomplete`.
class LabelSet {
 public:
  explicit LabelSet(const std::filesystem::path& folder, bool allow_incomplete = false);
  const Manifest& manifest() const { return manifest_; }
  int64_t size() const { return manifest_.labeled(); }
  /// Every item in input order.
  void for_each(const std::function<void(const LabeledItem&)>& visit) const;
  /// All items at once (small sets, tests).
  std::vector<LabeledItem> all() const;

 private:
  std::filesystem::path folder_;
  Manifest manifest_;
};

std::string shard_stem(int64_t index);

}  // namespace stunt::pseudolabel
