#include "stunt/train/teacher_labels.h"

#include <ATen/ATen.h>

#include <algorithm>

#include "stunt/core/error.h"
#include "stunt/core/logging.h"
#include "stunt/core/strings.h"
#include "stunt/pseudolabel/label_set.h"

namespace stunt::train {

TeacherLogitsData::TeacherLogitsData(const std::filesystem::path& folder, int64_t max_tokens,
                                     int64_t pad_id)
    : pad_id_(pad_id) {
  const pseudolabel::LabelSet labels(folder);
  const pseudolabel::Manifest& manifest = labels.manifest();
  const std::string where = folder.string();
  STUNT_CHECK_AS(ValueError, manifest.kind == "logits", where, ": labels of kind '", manifest.kind,
                 "'; token-level distillation reads a teacher's log-probabilities (compress label "
                 "--kind logits)");
  STUNT_CHECK_AS(NotImplementedError, manifest.settings.value("logits_of", "input") == "input",
                 where,
                 ": log-probabilities of the teacher's generations (--logits-of generation) are "
                 "not implemented yet as training data; label the training text itself "
                 "(--logits-of input)");
  STUNT_CHECK_AS(ValueError, max_tokens >= 2, "--seq-len ", max_tokens,
                 ": training items need at least 2 tokens");
  // Folders labeled before --logits-temperature existed hold no key: they stored T = 1.
  temperature_ = manifest.settings.value("logits_temperature", 1.0);
  teacher_sha256_ = manifest.teacher.value("sha256", "");
  teacher_path_ = manifest.teacher.value("path", "");
  int64_t cut = 0;
  labels.for_each([&](const pseudolabel::LabeledItem& labeled) {
    const auto& record = labeled.record;
    STUNT_CHECK_AS(FormatError,
                   record.contains("tokens") && labeled.tensors.count("top_ids") &&
                       labeled.tensors.count("top_log_probs"),
                   where, ": item ", record.value("index", int64_t{-1}),
                   " has no tokens or no top_ids/top_log_probs; relabel with compress label "
                   "--kind logits");
    Item item;
    item.tokens = record.at("tokens").get<std::vector<int64_t>>();
    item.top_ids = labeled.tensors.at("top_ids");
    item.top_log_probs = labeled.tensors.at("top_log_probs");
    const auto n = static_cast<int64_t>(item.tokens.size());
    if (n < 2) return;
    STUNT_CHECK_AS(FormatError, item.top_ids.size(0) == n - 1, where, ": item ",
                   record.value("index", int64_t{-1}), " has ", n, " tokens and ",
                   item.top_ids.size(0), " rows of log-probabilities; expected ", n - 1);
    if (n > max_tokens) {
      item.tokens.resize(static_cast<size_t>(max_tokens));
      // Row t predicts token t + 1: a cut item keeps the rows of its kept positions.
      item.top_ids = item.top_ids.narrow(0, 0, max_tokens);
      item.top_log_probs = item.top_log_probs.narrow(0, 0, max_tokens);
      ++cut;
    }
    top_k_ = item.top_ids.size(1);
    largest_token_ =
        std::max({largest_token_, *std::max_element(item.tokens.begin(), item.tokens.end()),
                  item.top_ids.max().item<int64_t>()});
    items_.push_back(std::move(item));
  });
  STUNT_CHECK_AS(ValueError, !items_.empty(), where,
                 ": no item of at least 2 tokens; label more text");
  log::info("training data: ", items_.size(), " items with the teacher's top-", top_k_,
            " log-probabilities",
            temperature_ != 1.0 ? str(" at temperature ", temperature_) : std::string(), " from ",
            where, cut > 0 ? str(" (", cut, " cut to ", max_tokens, " tokens)") : std::string());
  fingerprint_ =
      str("labels ", where, " teacher ", teacher_sha256_, " input ",
          manifest.input.value("sha256", ""), " items ", items_.size(), " max ", max_tokens,
          temperature_ != 1.0 ? str(" temperature ", temperature_) : std::string());
}

TrainingBatch TeacherLogitsData::batch(const std::vector<int64_t>& examples) const {
  const auto rows = static_cast<int64_t>(examples.size());
  int64_t longest = 0;
  for (int64_t e : examples) {
    longest = std::max<int64_t>(longest, items_.at(static_cast<size_t>(e)).tokens.size());
  }
  at::Tensor ids = at::full({rows, longest}, pad_id_, at::kLong);
  at::Tensor mask = at::zeros({rows, longest}, at::kLong);
  at::Tensor labels = at::full({rows, longest}, -100, at::kLong);
  at::Tensor top_ids = at::zeros({rows, longest, top_k_}, at::kLong);
  at::Tensor top_log_probs = at::zeros({rows, longest, top_k_}, at::kFloat);
  at::Tensor scored = at::zeros({rows, longest}, at::kBool);
  for (int64_t r = 0; r < rows; ++r) {
    const Item& item = items_.at(static_cast<size_t>(examples[static_cast<size_t>(r)]));
    const auto n = static_cast<int64_t>(item.tokens.size());
    const at::Tensor tokens = at::tensor(item.tokens, at::kLong);
    ids[r].narrow(0, 0, n).copy_(tokens);
    labels[r].narrow(0, 0, n).copy_(tokens);
    mask[r].narrow(0, 0, n).fill_(1);
    const int64_t stored = item.top_ids.size(0);
    top_ids[r].narrow(0, 0, stored).copy_(item.top_ids);
    top_log_probs[r].narrow(0, 0, stored).copy_(item.top_log_probs);
    scored[r].narrow(0, 0, stored).fill_(true);
  }
  TrainingBatch batch;
  batch.inputs.input_ids = ids;
  batch.inputs.attention_mask = mask;
  batch.labels = labels;
  batch.teacher.top_ids = top_ids;
  batch.teacher.top_log_probs = top_log_probs;
  batch.teacher.scored = scored;
  batch.teacher.temperature = temperature_;
  return batch;
}

}  // namespace stunt::train
