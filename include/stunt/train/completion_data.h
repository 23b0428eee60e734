#pragma once
/// Prompts with completions for a causal language model, the loss on the completion alone:
/// sequence-level distillation (Kim & Rush 2016) trains a student on its teacher's generations
/// (compress label --kind generate) this way, as supervised fine-tuning trains on answers. With
/// learn_prompt the prompt's tokens are predicted too (TRL's completion_only_loss = False): a
/// student with few generated tokens per item still learns the language of its inputs.

#include <cstdint>
#include <string>
#include <vector>

#include "stunt/train/trainer.h"

namespace stunt::train {

struct Completion {
  /// The prompt's token ids, then the completion's.
  std::vector<int64_t> prompt;
  std::vector<int64_t> completion;
};

class CompletionData : public TrainingData {
 public:
  /// ValueError naming `source` for no example or an example without completion tokens.
  CompletionData(std::vector<Completion> examples, int64_t pad_id, const std::string& source,
                 std::string fingerprint, bool learn_prompt = false);
  int64_t size() const override { return static_cast<int64_t>(examples_.size()); }
  /// Right-padded to the longest example: input_ids and attention_mask [B, S], and labels [B, S]
  /// the completion's ids where they stand, -100 at the prompt and the padding (so that only
  /// completion tokens are predicted: the first from the prompt's last token); with
  /// learn_prompt, the prompt's ids as well.
  TrainingBatch batch(const std::vector<int64_t>& examples) const override;
  std::string fingerprint() const override { return fingerprint_; }

 private:
  std::vector<Completion> examples_;
  int64_t pad_id_ = 0;
  std::string fingerprint_;
  bool learn_prompt_ = false;
};

}  // namespace stunt::train
