#include "stunt/train/classification.h"

#include <ATen/ATen.h>

#include <algorithm>

#include "stunt/core/error.h"

namespace stunt::train {

LabeledTextData::LabeledTextData(std::vector<io::Sample> samples, int64_t pad_id,
                                 const std::string& source, std::string fingerprint)
    : samples_(std::move(samples)), pad_id_(pad_id), fingerprint_(std::move(fingerprint)) {
  for (const io::Sample& s : samples_) {
    STUNT_CHECK_AS(ValueError, s.label.has_value(), source, ":", s.line,
                   ": no \"label\"; classification trains on JSONL records with \"text\" and an "
                   "integer \"label\" (the class index)");
    STUNT_CHECK_AS(ValueError, *s.label >= 0, source, ":", s.line, ": label ", *s.label,
                   " is negative; labels are class indices from 0");
    STUNT_CHECK_AS(ValueError, !s.input_ids.empty(), source, ":", s.line,
                   ": the text gives no tokens");
    classes_ = std::max(classes_, *s.label + 1);
  }
  STUNT_CHECK_AS(ValueError, !samples_.empty(), source, ": no records to train on");
}

TrainingBatch LabeledTextData::batch(const std::vector<int64_t>& examples) const {
  std::vector<io::Sample> chosen;
  chosen.reserve(examples.size());
  for (int64_t e : examples) chosen.push_back(samples_.at(static_cast<size_t>(e)));
  io::TokenBatch padded = io::pad_batch(chosen, pad_id_);
  TrainingBatch batch;
  batch.inputs.input_ids = padded.input_ids;
  batch.inputs.attention_mask = padded.attention_mask;
  batch.labels = padded.labels;
  return batch;
}

TaskLoss sequence_classification_loss(model::Model& model, const TrainingBatch& batch) {
  const model::Output out = model.forward_with_grad(batch.inputs);
  STUNT_CHECK_AS(ValueError, out.logits.defined() && out.logits.dim() == 2, model.architecture(),
                 " gives no class logits [batch, classes]: classification trains a model with a "
                 "classifier head (e.g. BertForSequenceClassification)");
  const int64_t classes = out.logits.size(1);
  const int64_t largest = batch.labels.max().item<int64_t>();
  STUNT_CHECK_AS(ValueError, largest < classes, "label ", largest, " is not a class of the model, ",
                 "which has ", classes,
                 "; give the model as many classes (num_labels) as the data has");
  return {at::cross_entropy_loss(out.logits.to(at::kFloat), batch.labels), out};
}

}  // namespace stunt::train
