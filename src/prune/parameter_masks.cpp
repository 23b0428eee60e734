#include "stunt/prune/parameter_masks.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include "stunt/core/error.h"

namespace stunt::prune {

ParameterMasks::~ParameterMasks() {
  for (Mask& m : masks_) {
    if (m.hook >= 0) m.parameter.remove_hook(static_cast<unsigned>(m.hook));
  }
}

void ParameterMasks::add(const std::string& name, at::Tensor parameter, const at::Tensor& pruned) {
  STUNT_CHECK(pruned.scalar_type() == at::kBool && pruned.sizes() == parameter.sizes(), name,
              ": the mask is ", pruned.scalar_type(), " ", pruned.sizes(), ", expected bool ",
              parameter.sizes());
  for (const Mask& m : masks_) {
    STUNT_CHECK(m.name != name, name, " is masked twice");
  }
  const at::Tensor on_device = pruned.to(parameter.device());
  Mask mask{name, parameter, on_device, -1,
            std::make_shared<at::Tensor>(on_device.logical_not().to(parameter.scalar_type()))};
  {
    c10::NoGradGuard no_grad;
    mask.parameter.masked_fill_(mask.pruned, 0);
  }
  if (parameter.requires_grad()) {
    // The hook reads the mask through a shared handle, so that update() reaches it.
    std::shared_ptr<at::Tensor> keep = mask.keep;
    mask.hook = static_cast<int>(
        mask.parameter.register_hook([keep](const at::Tensor& grad) { return grad * *keep; }));
  }
  masks_.push_back(std::move(mask));
}

void ParameterMasks::update(const std::string& name, const at::Tensor& pruned) {
  for (Mask& m : masks_) {
    if (m.name != name) continue;
    STUNT_CHECK(pruned.scalar_type() == at::kBool && pruned.sizes() == m.parameter.sizes(), name,
                ": the new mask is ", pruned.scalar_type(), " ", pruned.sizes(), ", expected bool ",
                m.parameter.sizes());
    m.pruned = pruned.to(m.parameter.device());
    *m.keep = m.pruned.logical_not().to(m.parameter.scalar_type());
    c10::NoGradGuard no_grad;
    m.parameter.masked_fill_(m.pruned, 0);
    return;
  }
  throw InternalError(name + " has no mask to update");
}

void ParameterMasks::add_existing_zeros(const std::string& name, at::Tensor parameter) {
  add(name, parameter, parameter.detach() == 0);
}

void ParameterMasks::apply() {
  c10::NoGradGuard no_grad;
  for (Mask& m : masks_) m.parameter.masked_fill_(m.pruned, 0);
}

at::Tensor ParameterMasks::pruned(const std::string& name) const {
  for (const Mask& m : masks_) {
    if (m.name == name) return m.pruned;
  }
  return {};
}

}  // namespace stunt::prune
