#include "stunt/train/seq2seq.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <algorithm>

#include "stunt/core/error.h"
#include "stunt/io/dataset.h"
#include "stunt/train/cross_entropy.h"

namespace stunt::train {

Seq2SeqData::Seq2SeqData(std::vector<Seq2SeqExample> examples, int64_t pad_id,
                         int64_t decoder_start_id, const std::string& source,
                         std::string fingerprint)
    : examples_(std::move(examples)),
      pad_id_(pad_id),
      decoder_start_id_(decoder_start_id),
      fingerprint_(std::move(fingerprint)) {
  STUNT_CHECK_AS(ValueError, !examples_.empty(), source, ": no records to train on");
  for (const Seq2SeqExample& e : examples_) {
    STUNT_CHECK_AS(ValueError, !e.source.empty(), source, ":", e.line,
                   ": the source gives no tokens");
    STUNT_CHECK_AS(ValueError, !e.target.empty(), source, ":", e.line,
                   ": the target gives no tokens");
  }
}

TrainingBatch Seq2SeqData::batch(const std::vector<int64_t>& examples) const {
  std::vector<std::vector<int64_t>> sources, targets;
  for (int64_t e : examples) {
    sources.push_back(examples_.at(static_cast<size_t>(e)).source);
    targets.push_back(examples_.at(static_cast<size_t>(e)).target);
  }
  const io::TokenBatch encoder = io::pad_batch(sources, pad_id_);
  const io::TokenBatch decoder = io::pad_batch(targets, pad_id_);
  TrainingBatch batch;
  batch.inputs.input_ids = encoder.input_ids;
  batch.inputs.attention_mask = encoder.attention_mask;
  batch.labels = decoder.input_ids.masked_fill(decoder.attention_mask == 0, -100);
  // transformers' _shift_right: the start token, then every label but the last, with the
  // ignored positions (padding) as pad ids.
  const int64_t rows = batch.labels.size(0);
  at::Tensor shifted = at::cat({at::full({rows, 1}, decoder_start_id_, at::kLong),
                                batch.labels.narrow(1, 0, batch.labels.size(1) - 1)},
                               1);
  batch.inputs.decoder_input_ids = shifted.masked_fill(shifted == -100, pad_id_);
  return batch;
}

TaskLoss seq2seq_loss(model::Model& model, const TrainingBatch& batch) {
  STUNT_CHECK_AS(ValueError, batch.inputs.decoder_input_ids.defined(), model.architecture(),
                 ": a sequence-to-sequence batch carries decoder inputs");
  // Held-out evaluations run without autograd.
  const model::Output out = at::GradMode::is_enabled() ? model.forward_with_grad(batch.inputs)
                                                       : model.forward(batch.inputs);
  STUNT_CHECK_AS(
      ValueError,
      out.logits.defined() && out.logits.dim() == 3 && out.logits.size(1) == batch.labels.size(1),
      model.architecture(),
      " gives no decoder logits [batch, target, vocab]: sequence-to-sequence training "
      "needs an encoder-decoder model (T5)");
  const at::Tensor logits = out.logits.to(at::kFloat);
  return {token_cross_entropy(logits.reshape({-1, logits.size(-1)}), batch.labels.reshape(-1)),
          out};
}

}  // namespace stunt::train
