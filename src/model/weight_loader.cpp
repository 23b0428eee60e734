#include "detail/weight_loader.h"

#include <ATen/ATen.h>

#include "stunt/core/error.h"
#include "stunt/core/strings.h"

namespace stunt::model::detail {

namespace {

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) out += (i ? ", " : "") + std::to_string(shape[i]);
  return out + "]";
}

std::string listed(const std::vector<std::string>& items, size_t limit = 8) {
  std::vector<std::string> head(items.begin(), items.begin() + std::min(items.size(), limit));
  std::string out = join(head, "; ");
  if (items.size() > limit) out += str("; and ", items.size() - limit, " more");
  return out;
}

}  // namespace

WeightLoader::WeightLoader(std::unique_ptr<io::Checkpoint> checkpoint, c10::ScalarType dtype)
    : checkpoint_(std::move(checkpoint)), dtype_(dtype) {
  for (const io::TensorEntry& entry : checkpoint_->entries()) entries_[entry.name] = &entry;
}

std::string WeightLoader::find_prefix(const std::vector<std::string>& prefixes,
                                      const std::string& probe) const {
  for (const std::string& prefix : prefixes) {
    if (contains(prefix + probe)) return prefix;
  }
  std::vector<std::string> tried;
  for (const std::string& prefix : prefixes) tried.push_back("\"" + prefix + probe + "\"");
  throw FormatError(str(checkpoint_->path().string(), ": no tensor named ", join(tried, " or "),
                        "; the weights do not belong to the model type that config.json names"));
}

at::Tensor WeightLoader::placeholder(const std::vector<int64_t>& shape) const {
  // On the meta device: no memory, whatever a wrong config.json claims; finish() then reports.
  return at::empty(shape, at::TensorOptions().dtype(dtype_).device(at::kMeta));
}

at::Tensor WeightLoader::take(const std::string& name, const std::vector<int64_t>& shape) {
  at::Tensor tensor = take_optional(name, shape);
  if (!tensor.defined()) {
    missing_.push_back(name + " " + shape_text(shape));
    return placeholder(shape);
  }
  return tensor;
}

at::Tensor WeightLoader::take_optional(const std::string& name, const std::vector<int64_t>& shape) {
  auto it = entries_.find(name);
  if (it == entries_.end()) return {};
  taken_.insert(name);
  if (it->second->shape != shape) {
    misshaped_.push_back(
        str(name, " is ", shape_text(it->second->shape), ", expected ", shape_text(shape)));
    return placeholder(shape);
  }
  at::Tensor tensor = checkpoint_->load(name);
  stored_dtypes_[name] = tensor.scalar_type();
  STUNT_CHECK_AS(FormatError, at::isFloatingType(tensor.scalar_type()),
                 checkpoint_->path().string(), ": tensor ", name, " has dtype ", it->second->dtype,
                 "; a weight must be floating point (F32, F16, BF16)");
  return tensor.to(dtype_);
}

at::Tensor WeightLoader::take_as_stored(const std::string& name) {
  taken_.insert(name);
  at::Tensor tensor = checkpoint_->load(name);
  stored_dtypes_[name] = tensor.scalar_type();
  return tensor;
}

void WeightLoader::ignore_unused(std::function<bool(const std::string&)> predicate) {
  ignorable_.push_back(std::move(predicate));
}

void WeightLoader::finish(const std::string& model_type) const {
  std::vector<std::string> unexpected;
  for (const auto& [name, entry] : entries_) {
    if (taken_.count(name)) continue;
    bool ignorable = false;
    for (const auto& predicate : ignorable_) ignorable = ignorable || predicate(name);
    if (!ignorable) unexpected.push_back(name + " " + shape_text(entry->shape));
  }
  std::vector<std::string> problems;
  if (!missing_.empty()) problems.push_back("missing tensors: " + listed(missing_));
  if (!misshaped_.empty()) problems.push_back("tensors of the wrong shape: " + listed(misshaped_));
  if (!unexpected.empty()) {
    problems.push_back("tensors a " + model_type + " model does not have: " + listed(unexpected));
  }
  if (problems.empty()) return;
  throw FormatError(str(checkpoint_->path().string(), ": the weights do not match config.json (",
                        join(problems, ". "),
                        "). Check that config.json belongs to these weights"));
}

}  // namespace stunt::model::detail
