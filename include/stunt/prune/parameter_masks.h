#pragma once
/// Masks that hold through training: pruned weights stay zero and receive no gradient, whatever
/// the optimizer does (momentum, weight decay, Adam's moments).

#include <ATen/core/Tensor.h>

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

namespace stunt::prune {

class ParameterMasks {
 public:
  ParameterMasks() = default;
  ParameterMasks(const ParameterMasks&) = delete;
  ParameterMasks& operator=(const ParameterMasks&) = delete;
  /// Removes the gradient hooks; the parameters keep their values.
  ~ParameterMasks();

  /// Masks `parameter` (a leaf that requires grad, or a plain tensor): its `pruned` positions
  /// (bool, same shape) are zeroed now and after every apply(), and, for a parameter that
  /// requires grad, its gradient is zeroed there by a hook before any optimizer sees it.
  void add(const std::string& name, at::Tensor parameter, const at::Tensor& pruned);
  /// The same for every zero `parameter` holds now (ConstantPruningModifier's mask).
  void add_existing_zeros(const std::string& name, at::Tensor parameter);
  /// Replaces the pruned positions of the parameter added under `name` (a gradual schedule's
  /// next mask) and zeroes them; its gradient is masked with the new positions from then on.
  void update(const std::string& name, const at::Tensor& pruned);
  /// Zeroes every pruned position again: call after each optimizer step, since weight decay or
  /// momentum built up before masking could move them.
  void apply();
  size_t size() const { return masks_.size(); }
  /// The pruned positions of the parameter added under `name`, or an undefined tensor.
  at::Tensor pruned(const std::string& name) const;

 private:
  struct Mask {
    std::string name;
    at::Tensor parameter;
    at::Tensor pruned;
    int hook = -1;
    /// 1 where the parameter is kept, in its dtype: what the gradient hook multiplies by.
    std::shared_ptr<at::Tensor> keep;
  };
  std::vector<Mask> masks_;
};

}  // namespace stunt::prune
