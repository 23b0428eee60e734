#pragma once
/// Sequence-to-sequence training (T5), teacher-forced as transformers trains
/// T5ForConditionalGeneration: the encoder reads the source, the decoder reads the target shifted
/// right behind the decoder start token, and every target token is scored by cross-entropy.

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

#include "stunt/model/model.h"
#include "stunt/train/trainer.h"

namespace stunt::train {

struct Seq2SeqExample {
  std::vector<int64_t> source;
  /// The ids to predict, end-of-sequence token included.
  std::vector<int64_t> target;
  /// Where it came from (1-based line), for errors.
  int64_t line = 0;
};

/// Source/target pairs. A batch right-pads sources with `pad_id` (attention_mask 0 there) and
/// targets with -100 in labels; decoder_input_ids are the labels shifted right behind
/// `decoder_start_id`, with `pad_id` where a label is -100 (transformers' _shift_right).
class Seq2SeqData : public TrainingData {
 public:
  /// ValueError naming `source` and the line for an example with no source or target ids.
  Seq2SeqData(std::vector<Seq2SeqExample> examples, int64_t pad_id, int64_t decoder_start_id,
              const std::string& source, std::string fingerprint);
  int64_t size() const override { return static_cast<int64_t>(examples_.size()); }
  TrainingBatch batch(const std::vector<int64_t>& examples) const override;
  std::string fingerprint() const override { return fingerprint_; }

 private:
  std::vector<Seq2SeqExample> examples_;
  int64_t pad_id_;
  int64_t decoder_start_id_;
  std::string fingerprint_;
};

/// Mean cross-entropy of the decoder's logits [batch, target, vocab] over the labels that are
/// not -100 (T5ForConditionalGeneration's loss). ValueError when the model is not an
/// encoder-decoder.
TaskLoss seq2seq_loss(model::Model& model, const TrainingBatch& batch);

}  // namespace stunt::train
