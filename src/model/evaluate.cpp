#include "stunt/model/evaluate.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "stunt/core/error.h"
#include "stunt/io/dataset.h"

namespace stunt::model {

Batch padded_batch(const std::vector<std::vector<int64_t>>& samples, size_t begin, size_t end,
                   int64_t pad_id) {
  STUNT_ASSERT(begin < end && end <= samples.size(), "bad batch range");
  for (size_t i = begin; i < end; ++i) {
    STUNT_CHECK(!samples[i].empty(), "sample ", i,
                " is empty; every sample needs at least one token");
  }
  io::TokenBatch padded = io::pad_batch(
      std::vector<std::vector<int64_t>>(samples.begin() + begin, samples.begin() + end), pad_id);
  Batch batch;
  batch.input_ids = padded.input_ids;
  batch.attention_mask = padded.attention_mask;
  return batch;
}

PerplexityResult perplexity(Model& model, const std::vector<std::vector<int64_t>>& windows,
                            const EvalOptions& options) {
  STUNT_CHECK(!windows.empty(), "perplexity needs at least one window of tokens");
  c10::InferenceMode guard;
  double total_nll = 0;
  int64_t total_tokens = 0;
  const size_t step = static_cast<size_t>(std::max<int64_t>(1, options.batch_size));
  for (size_t begin = 0; begin < windows.size(); begin += step) {
    const size_t end = std::min(windows.size(), begin + step);
    // Runs of equal-length windows share a forward; a shorter tail is scored on its own.
    for (size_t i = begin; i < end;) {
      size_t j = i + 1;
      while (j < end && windows[j].size() == windows[i].size()) ++j;
      STUNT_CHECK(windows[i].size() >= 2, "window ", i, " has ", windows[i].size(),
                  " token(s); perplexity needs at least 2");
      Batch batch = padded_batch(windows, i, j, 0);
      batch.attention_mask = at::Tensor();
      Output out = model.forward(batch);
      STUNT_CHECK(out.logits.defined() && out.logits.dim() == 3, model.architecture(),
                  " has no language-model head; perplexity needs a causal LM");
      at::Tensor logits = out.logits.narrow(1, 0, out.logits.size(1) - 1).to(at::kFloat);
      at::Tensor targets = batch.input_ids.narrow(1, 1, batch.input_ids.size(1) - 1);
      at::Tensor nll = at::cross_entropy_loss(logits.reshape({-1, logits.size(-1)}),
                                              targets.reshape({-1}), {}, at::Reduction::Sum);
      total_nll += nll.item<double>();
      total_tokens += targets.numel();
      i = j;
    }
    if (options.progress) options.progress(static_cast<int64_t>(end), windows.size());
  }
  PerplexityResult result;
  result.nll = total_nll / static_cast<double>(total_tokens);
  result.perplexity = std::exp(result.nll);
  result.tokens = total_tokens;
  result.windows = static_cast<int64_t>(windows.size());
  return result;
}

FidelityResult fidelity(Model& model, Model& reference,
                        const std::vector<std::vector<int64_t>>& samples, int64_t pad_id,
                        const SentencePooling& pooling, const EvalOptions& options) {
  STUNT_CHECK(!samples.empty(), "fidelity needs at least one sample");
  c10::InferenceMode guard;
  FidelityResult result;
  double sum = 0;
  double count = 0;  // tokens for KL, samples for cosine
  const size_t step = static_cast<size_t>(std::max<int64_t>(1, options.batch_size));
  for (size_t begin = 0; begin < samples.size(); begin += step) {
    const size_t end = std::min(samples.size(), begin + step);
    Batch batch = padded_batch(samples, begin, end, pad_id);
    Output got = model.forward(batch);
    Output want = reference.forward(batch);
    STUNT_CHECK(got.logits.defined() == want.logits.defined(),
                "the model and the reference differ in kind (one has a language-model head, the "
                "other not); fidelity compares like with like");
    at::Tensor per_sample;
    if (got.logits.defined() && got.logits.dim() == 3) {
      result.measure = "kl";
      STUNT_CHECK(got.logits.sizes() == want.logits.sizes(), "model logits ", got.logits.sizes(),
                  " and reference logits ", want.logits.sizes(), " differ in shape");
      at::Tensor log_p = at::log_softmax(want.logits.to(at::kFloat), -1);
      at::Tensor log_q = at::log_softmax(got.logits.to(at::kFloat), -1);
      at::Tensor kl = (log_p.exp() * (log_p - log_q)).sum(-1);  // [batch, seq]
      at::Tensor mask = batch.attention_mask.to(at::kFloat);
      per_sample = (kl * mask).sum(1) / mask.sum(1);
      sum += (kl * mask).sum().item<double>();
      count += mask.sum().item<double>();
      const double worst = per_sample.max().item<double>();
      result.worst = begin == 0 ? worst : std::max(result.worst, worst);
    } else {
      result.measure = "cosine";
      at::Tensor a = got.logits.defined() ? got.logits : pooling(got.hidden, batch.attention_mask);
      at::Tensor b =
          want.logits.defined() ? want.logits : pooling(want.hidden, batch.attention_mask);
      per_sample = at::cosine_similarity(a.to(at::kFloat), b.to(at::kFloat), -1);
      sum += per_sample.sum().item<double>();
      count += static_cast<double>(per_sample.numel());
      const double worst = per_sample.min().item<double>();
      result.worst = begin == 0 ? worst : std::min(result.worst, worst);
    }
    if (options.progress) options.progress(static_cast<int64_t>(end), samples.size());
  }
  result.mean = sum / count;
  result.samples = static_cast<int64_t>(samples.size());
  return result;
}

AccuracyResult accuracy(Model& model, const std::vector<std::vector<int64_t>>& samples,
                        const std::vector<int64_t>& labels, int64_t pad_id,
                        const EvalOptions& options) {
  STUNT_CHECK(!samples.empty(), "accuracy needs at least one labeled sample");
  STUNT_CHECK(samples.size() == labels.size(), "accuracy needs one label per sample; got ",
              labels.size(), " labels for ", samples.size(), " samples");
  c10::InferenceMode guard;
  AccuracyResult result;
  const size_t step = static_cast<size_t>(std::max<int64_t>(1, options.batch_size));
  for (size_t begin = 0; begin < samples.size(); begin += step) {
    const size_t end = std::min(samples.size(), begin + step);
    Output out = model.forward(padded_batch(samples, begin, end, pad_id));
    STUNT_CHECK(out.logits.defined() && out.logits.dim() == 2, model.architecture(),
                " does not output class logits [batch, classes]; accuracy needs a classifier "
                "(e.g. BertForSequenceClassification)");
    const int64_t classes = out.logits.size(1);
    at::Tensor predicted = out.logits.argmax(-1);
    for (size_t i = begin; i < end; ++i) {
      const int64_t label = labels[i];
      STUNT_CHECK(label >= 0 && label < classes, "sample ", i, " has label ", label,
                  " but the model has ", classes, " classes");
      if (predicted[static_cast<int64_t>(i - begin)].item<int64_t>() == label) ++result.correct;
    }
    result.total += static_cast<int64_t>(end - begin);
    if (options.progress) options.progress(static_cast<int64_t>(end), samples.size());
  }
  result.accuracy = static_cast<double>(result.correct) / static_cast<double>(result.total);
  return result;
}

}  // namespace stunt::model
