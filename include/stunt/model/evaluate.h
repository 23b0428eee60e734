#pragma once
/// Model quality measures: perplexity of a causal LM, fidelity of a model to a reference (cosine
/// of sentence embeddings, or KL divergence of next-token distributions), and classification
/// accuracy. Inputs are token sequences; io/dataset.h produces them from files.

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "stunt/model/hf_model.h"
#include "stunt/model/model.h"

namespace stunt::model {

struct EvalOptions {
  int64_t batch_size = 8;
  /// Called after each batch with (samples done, samples total).
  std::function<void(int64_t, int64_t)> progress;
};

struct PerplexityResult {
  double perplexity = 0;
  /// Mean negative log-likelihood per predicted token (nats).
  double nll = 0;
  int64_t tokens = 0;
  int64_t windows = 0;
};

/// GPTQ-style perplexity: each window is scored on its own (no context carried over), token t
/// predicting t + 1, and the perplexity is exp of the mean loss over every predicted token.
/// Windows may differ in length: runs of equal-length windows share a forward pass; there is no
/// padding and no context shared between windows.
PerplexityResult perplexity(Model& model, const std::vector<std::vector<int64_t>>& windows,
                            const EvalOptions& options = {});

struct FidelityResult {
  /// "cosine" (sentence embeddings, higher is better) or "kl" (nats per token, lower is better).
  std::string measure;
  double mean = 0;
  /// The worst sample: the lowest cosine or the highest per-sample mean KL.
  double worst = 0;
  int64_t samples = 0;
};

/// Compares `model` with `reference` on the same samples (right-padded with pad_id into batches).
/// Models with logits are compared by KL(reference || model) of their next-token distributions,
/// averaged over real tokens; encoders by the cosine of pooled sentence embeddings.
FidelityResult fidelity(Model& model, Model& reference,
                        const std::vector<std::vector<int64_t>>& samples, int64_t pad_id,
                        const SentencePooling& pooling, const EvalOptions& options = {});

struct AccuracyResult {
  double accuracy = 0;
  int64_t correct = 0;
  int64_t total = 0;
};

/// Accuracy of a classifier, whose logits are [batch, classes], against integer labels.
AccuracyResult accuracy(Model& model, const std::vector<std::vector<int64_t>>& samples,
                        const std::vector<int64_t>& labels, int64_t pad_id,
                        const EvalOptions& options = {});

/// Right-pads samples to the longest with pad_id and builds the attention mask.
Batch padded_batch(const std::vector<std::vector<int64_t>>& samples, size_t begin, size_t end,
                   int64_t pad_id);

}  // namespace stunt::model
