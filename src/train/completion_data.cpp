#include "stunt/train/completion_data.h"

#include <ATen/ATen.h>

#include <algorithm>

#include "stunt/core/error.h"

namespace stunt::train {

CompletionData::CompletionData(std::vector<Completion> examples, int64_t pad_id,
                               const std::string& source, std::string fingerprint,
                               bool learn_prompt)
    : examples_(std::move(examples)),
      pad_id_(pad_id),
      fingerprint_(std::move(fingerprint) + (learn_prompt ? " with prompts" : "")),
      learn_prompt_(learn_prompt) {
  STUNT_CHECK_AS(ValueError, !examples_.empty(), source, ": no example to train on");
  for (size_t i = 0; i < examples_.size(); ++i) {
    STUNT_CHECK_AS(ValueError, !examples_[i].completion.empty(), source, ": example ", i,
                   " has no completion tokens to learn");
  }
}

TrainingBatch CompletionData::batch(const std::vector<int64_t>& examples) const {
  int64_t longest = 0;
  for (int64_t e : examples) {
    const Completion& c = examples_.at(static_cast<size_t>(e));
    longest = std::max(longest, static_cast<int64_t>(c.prompt.size() + c.completion.size()));
  }
  const int64_t rows = static_cast<int64_t>(examples.size());
  at::Tensor ids = at::full({rows, longest}, pad_id_, at::kLong);
  at::Tensor mask = at::zeros({rows, longest}, at::kLong);
  at::Tensor labels = at::full({rows, longest}, -100, at::kLong);
  auto id = ids.accessor<int64_t, 2>();
  auto keep = mask.accessor<int64_t, 2>();
  auto label = labels.accessor<int64_t, 2>();
  for (int64_t r = 0; r < rows; ++r) {
    const Completion& c = examples_.at(static_cast<size_t>(examples[static_cast<size_t>(r)]));
    int64_t t = 0;
    for (int64_t token : c.prompt) {
      id[r][t] = token;
      if (learn_prompt_) label[r][t] = token;  // the first is never predicted (nothing before)
      keep[r][t++] = 1;
    }
    for (int64_t token : c.completion) {
      id[r][t] = token;
      keep[r][t] = 1;
      label[r][t++] = token;
    }
  }
  TrainingBatch b;
  b.inputs.input_ids = ids;
  b.inputs.attention_mask = mask;
  b.labels = labels;
  return b;
}

}  // namespace stunt::train
