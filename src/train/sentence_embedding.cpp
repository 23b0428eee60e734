#include "stunt/train/sentence_embedding.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include "stunt/core/error.h"
#include "stunt/io/dataset.h"

namespace stunt::train {

SentenceEmbeddingData::SentenceEmbeddingData(std::vector<EmbeddingExample> examples, int64_t pad_id,
                                             const std::string& source, std::string fingerprint)
    : examples_(std::move(examples)), pad_id_(pad_id), fingerprint_(std::move(fingerprint)) {
  STUNT_CHECK_AS(ValueError, !examples_.empty(), source, ": no records to train on");
  const EmbeddingExample& first = examples_.front();
  pairs_ = first.target.empty();
  width_ = static_cast<int64_t>(first.target.size());
  for (const EmbeddingExample& e : examples_) {
    STUNT_CHECK_AS(ValueError, !e.text.empty(), source, ":", e.line, ": the text gives no tokens");
    if (pairs_) {
      STUNT_CHECK_AS(ValueError, e.target.empty() && !e.pair.empty(), source, ":", e.line,
                     ": expected a pair (\"text_pair\" with tokens, and \"score\") like the "
                     "records before it; records are all pairs or all targets (\"embedding\")");
    } else {
      STUNT_CHECK_AS(ValueError, static_cast<int64_t>(e.target.size()) == width_ && e.pair.empty(),
                     source, ":", e.line, ": expected an \"embedding\" of ", width_,
                     " numbers like the records before it; records are all pairs or all "
                     "targets");
    }
  }
}

TrainingBatch SentenceEmbeddingData::batch(const std::vector<int64_t>& examples) const {
  std::vector<std::vector<int64_t>> texts;
  std::vector<float> labels;
  for (int64_t e : examples) texts.push_back(examples_.at(static_cast<size_t>(e)).text);
  if (pairs_) {
    for (int64_t e : examples) {
      const EmbeddingExample& ex = examples_.at(static_cast<size_t>(e));
      texts.push_back(ex.pair);
      labels.push_back(static_cast<float>(ex.score));
    }
  } else {
    for (int64_t e : examples) {
      const std::vector<float>& t = examples_.at(static_cast<size_t>(e)).target;
      labels.insert(labels.end(), t.begin(), t.end());
    }
  }
  const io::TokenBatch padded = io::pad_batch(texts, pad_id_);
  TrainingBatch batch;
  batch.inputs.input_ids = padded.input_ids;
  batch.inputs.attention_mask = padded.attention_mask;
  const auto rows = static_cast<int64_t>(examples.size());
  batch.labels = at::tensor(labels, at::kFloat);
  if (!pairs_) batch.labels = batch.labels.reshape({rows, width_});
  return batch;
}

TaskLoss sentence_embedding_loss(model::Model& model, const TrainingBatch& batch,
                                 const model::SentencePooling& pooling) {
  // Held-out evaluations run without autograd.
  const model::Output out = at::GradMode::is_enabled() ? model.forward_with_grad(batch.inputs)
                                                       : model.forward(batch.inputs);
  STUNT_CHECK_AS(ValueError, out.hidden.defined() && out.hidden.dim() == 3, model.architecture(),
                 " gives no hidden states to pool: sentence-embedding training needs an encoder");
  const at::Tensor embeddings = pooling(out.hidden.to(at::kFloat), batch.inputs.attention_mask);
  const int64_t rows = batch.labels.size(0);
  if (batch.labels.dim() == 1) {
    const at::Tensor cosine =
        at::cosine_similarity(embeddings.narrow(0, 0, rows), embeddings.narrow(0, rows, rows), 1);
    return {at::mse_loss(cosine, batch.labels), out};
  }
  STUNT_CHECK_AS(ValueError, embeddings.size(1) == batch.labels.size(1),
                 "the target embeddings "
                 "have ",
                 batch.labels.size(1), " numbers and the model's have ", embeddings.size(1),
                 "; give targets of the model's width");
  return {at::mse_loss(embeddings, batch.labels), out};
}

}  // namespace stunt::train
