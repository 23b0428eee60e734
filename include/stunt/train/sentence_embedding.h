#pragma once
/// Sentence-embedding training, as sentence-transformers trains an encoder: texts are pooled
/// into one vector each (model::SentencePooling: mean, CLS or max, then normalized when the
/// pipeline says so), and scored either as pairs with a similarity score (CosineSimilarityLoss:
/// the squared error between cos(u, v) and the score) or against a target embedding per text
/// (MSELoss, the form embedding distillation takes).

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

#include "stunt/model/hf_model.h"
#include "stunt/model/model.h"
#include "stunt/train/trainer.h"

namespace stunt::train {

struct EmbeddingExample {
  std::vector<int64_t> text;
  /// Pairs: the second text and the similarity score.
  std::vector<int64_t> pair;
  double score = 0.0;
  /// Targets: the embedding the text should get.
  std::vector<float> target;
  int64_t line = 0;
};

/// Either every example is a pair with a score, or every example has a target (of one width).
/// A batch of pairs holds the first texts in rows [0, B) and the second in [B, 2B), padded
/// together, with labels the scores (float [B]); a batch of targets holds the texts, with labels
/// the targets (float [B, dim]).
class SentenceEmbeddingData : public TrainingData {
 public:
  /// ValueError naming `source` and the line for a mixed or empty set, or targets of different
  /// widths.
  SentenceEmbeddingData(std::vector<EmbeddingExample> examples, int64_t pad_id,
                        const std::string& source, std::string fingerprint);
  int64_t size() const override { return static_cast<int64_t>(examples_.size()); }
  TrainingBatch batch(const std::vector<int64_t>& examples) const override;
  std::string fingerprint() const override { return fingerprint_; }
  bool pairs() const { return pairs_; }
  /// The targets' width (0 for pairs).
  int64_t target_width() const { return width_; }

 private:
  std::vector<EmbeddingExample> examples_;
  int64_t pad_id_;
  std::string fingerprint_;
  bool pairs_ = false;
  int64_t width_ = 0;
};

/// The loss of a batch of SentenceEmbeddingData: mean squared error between cos(u, v) and the
/// scores for pairs, between the embeddings and the targets otherwise (mean over elements).
TaskLoss sentence_embedding_loss(model::Model& model, const TrainingBatch& batch,
                                 const model::SentencePooling& pooling);

}  // namespace stunt::train
