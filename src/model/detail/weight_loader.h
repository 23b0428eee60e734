#pragma once
// Takes a model's tensors out of a checkpoint by name, checking each shape, and reports every
// missing, misshaped and unused tensor together once loading is done.

#include <ATen/core/Tensor.h>

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "stunt/io/checkpoint.h"

namespace stunt::model::detail {

class WeightLoader {
 public:
  WeightLoader(std::unique_ptr<io::Checkpoint> checkpoint, c10::ScalarType dtype);

  bool contains(const std::string& name) const { return entries_.count(name) > 0; }
  /// The first of `prefixes` ("" allowed) under which `probe` exists, e.g. "model." or "".
  /// Throws FormatError naming the probe when none fits.
  std::string find_prefix(const std::vector<std::string>& prefixes, const std::string& probe) const;

  /// The tensor `name` converted to the compute dtype. A missing or misshaped tensor is recorded
  /// (and a zero tensor of the expected shape returned) so that finish() can list them all.
  at::Tensor take(const std::string& name, const std::vector<int64_t>& shape);
  /// Like take, but an absent tensor gives an undefined tensor instead of an error.
  at::Tensor take_optional(const std::string& name, const std::vector<int64_t>& shape);
  /// A tensor kept exactly as stored (integer buffers such as BERT's position_ids).
  at::Tensor take_as_stored(const std::string& name);

  /// Unused tensors whose names satisfy `predicate` are dropped silently (buffers that older
  /// transformers releases saved, such as rotary inv_freq or GPT-2's attn.bias mask).
  void ignore_unused(std::function<bool(const std::string&)> predicate);

  /// Throws FormatError listing missing, misshaped and unexpected tensors, if any.
  void finish(const std::string& model_type) const;

  const std::map<std::string, c10::ScalarType>& stored_dtypes() const { return stored_dtypes_; }

 private:
  /// Stands in for a missing or misshaped tensor until finish() reports it.
  at::Tensor placeholder(const std::vector<int64_t>& shape) const;

  std::unique_ptr<io::Checkpoint> checkpoint_;
  std::map<std::string, const io::TensorEntry*> entries_;
  c10::ScalarType dtype_;
  std::set<std::string> taken_;
  std::vector<std::string> missing_;
  std::vector<std::string> misshaped_;
  std::vector<std::function<bool(const std::string&)>> ignorable_;
  std::map<std::string, c10::ScalarType> stored_dtypes_;
};

}  // namespace stunt::model::detail
