#pragma once
/// Offline token-level distillation data: a label folder written by `compress label --kind
/// logits --logits-of input` holds, for every item, its tokens and the teacher's k most likely
/// next tokens (ids and log-probabilities) at each position. A batch gives the student the
/// tokens (next-token targets in `labels`) and the teacher's top-k beside them, so that
/// distillation needs no teacher in memory.

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "stunt/train/trainer.h"

namespace stunt::train {

class TeacherLogitsData : public TrainingData {
 public:
  /// Reads every item of the finished label folder `folder` (FormatError/ValueError naming it
  /// for another kind, labels of generations, or an unfinished job). Items longer than
  /// `max_tokens` are cut to it (their stored rows with them); items of fewer than 2 tokens are
  /// skipped.
  TeacherLogitsData(const std::filesystem::path& folder, int64_t max_tokens, int64_t pad_id);
  int64_t size() const override { return static_cast<int64_t>(items_.size()); }
  /// Right-padded to the longest item: input_ids and attention_mask [B, S]; labels [B, S] the
  /// ids, -100 at padding; teacher.top_ids / top_log_probs [B, S, k] with row t the teacher's
  /// distribution over token t + 1, and teacher.scored [B, S] true where a row is stored.
  TrainingBatch batch(const std::vector<int64_t>& examples) const override;
  std::string fingerprint() const override { return fingerprint_; }
  /// The largest token id in the tokens and the teacher's rows (the student's vocabulary must
  /// hold it), and k.
  int64_t largest_token() const { return largest_token_; }
  int64_t top_k() const { return top_k_; }
  /// The temperature the teacher's log-probabilities were stored at (1 unless labeled with
  /// --logits-temperature).
  double temperature() const { return temperature_; }
  /// The teacher's content hash as the manifest records it.
  const std::string& teacher_sha256() const { return teacher_sha256_; }
  const std::string& teacher_path() const { return teacher_path_; }

 private:
  struct Item {
    std::vector<int64_t> tokens;
    at::Tensor top_ids;        // [rows, k] int32
    at::Tensor top_log_probs;  // [rows, k] float16
  };
  std::vector<Item> items_;
  int64_t pad_id_ = 0;
  int64_t top_k_ = 0;
  double temperature_ = 1.0;
  int64_t largest_token_ = 0;
  std::string fingerprint_;
  std::string teacher_sha256_;
  std::string teacher_path_;
};

}  // namespace stunt::train
