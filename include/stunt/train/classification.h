#pragma once
/// Sequence classification as a training task: labelled texts (JSONL records with "text" and an
/// integer "label"), padded per batch, scored by cross-entropy on a classifier's logits
/// (BertForSequenceClassification and the like: logits [batch, classes]).

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

#include "stunt/io/dataset.h"
#include "stunt/model/model.h"
#include "stunt/train/trainer.h"

namespace stunt::train {

/// Labelled samples; a batch is right-padded with `pad_id` to its longest sample, with the
/// attention mask saying which positions are padding.
class LabeledTextData : public TrainingData {
 public:
  /// Every sample needs ids and a label: ValueError naming `source` (the file) and the sample's
  /// line. `fingerprint` identifies the data in checkpoints.
  LabeledTextData(std::vector<io::Sample> samples, int64_t pad_id, const std::string& source,
                  std::string fingerprint);
  int64_t size() const override { return static_cast<int64_t>(samples_.size()); }
  /// labels: int64 [batch], the class of each example.
  TrainingBatch batch(const std::vector<int64_t>& examples) const override;
  std::string fingerprint() const override { return fingerprint_; }
  /// One more than the largest label.
  int64_t classes() const { return classes_; }
  int64_t pad_id() const { return pad_id_; }

 private:
  std::vector<io::Sample> samples_;
  int64_t pad_id_;
  std::string fingerprint_;
  int64_t classes_ = 0;
};

/// Mean cross-entropy of the model's class logits [batch, classes] against batch.labels [batch]
/// (transformers' single-label classification loss). ValueError when the model has no
/// classifier head or a label is not one of its classes.
TaskLoss sequence_classification_loss(model::Model& model, const TrainingBatch& batch);

}  // namespace stunt::train
