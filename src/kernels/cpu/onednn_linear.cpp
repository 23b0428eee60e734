#include "stunt/kernels/onednn_linear.h"

#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/core/grad_mode.h>
#include <c10/util/Exception.h>

#include <optional>

#include "stunt/core/error.h"

namespace stunt::kernels {
namespace {

using LinearPointwise = at::Tensor(const at::Tensor&, const at::Tensor&,
                                   const std::optional<at::Tensor>&, c10::string_view,
                                   c10::List<std::optional<c10::Scalar>>,
                                   std::optional<c10::string_view>);

/// The operator's handle, or nothing when this LibTorch was built without oneDNN. Looked up
/// once: registration happens when LibTorch loads, before any forward.
const std::optional<c10::TypedOperatorHandle<LinearPointwise>>& linear_operator() {
  static const std::optional<c10::TypedOperatorHandle<LinearPointwise>> handle =
      []() -> std::optional<c10::TypedOperatorHandle<LinearPointwise>> {
    if (!at::hasMKLDNN()) return std::nullopt;
    const std::optional<c10::OperatorHandle> found =
        c10::Dispatcher::singleton().findOp({"mkldnn::_linear_pointwise", ""});
    if (!found || !found->hasKernelForDispatchKey(c10::DispatchKey::CPU)) return std::nullopt;
    try {
      return found->typed<LinearPointwise>();
    } catch (const c10::Error&) {
      return std::nullopt;  // another LibTorch changed the signature: at::linear serves
    }
  }();
  return handle;
}

}  // namespace

bool onednn_linear_supported(const at::Tensor& input, const at::Tensor& weight,
                             const at::Tensor& bias) {
  if (!linear_operator().has_value()) return false;
  // The operator has no derivative: a graph being recorded goes through at::linear.
  if (at::GradMode::is_enabled() && (input.requires_grad() || weight.requires_grad() ||
                                     (bias.defined() && bias.requires_grad()))) {
    return false;
  }
  auto plain = [](const at::Tensor& t) {
    return t.device().is_cpu() && t.layout() == at::kStrided && t.scalar_type() == at::kFloat &&
           t.is_contiguous() && t.numel() > 0;
  };
  return plain(input) && input.dim() >= 2 && plain(weight) && weight.dim() == 2 &&
         weight.size(1) == input.size(-1) &&
         (!bias.defined() || (plain(bias) && bias.dim() == 1 && bias.size(0) == weight.size(0)));
}

at::Tensor onednn_linear(const at::Tensor& input, const at::Tensor& weight,
                         const at::Tensor& bias) {
  STUNT_CHECK(onednn_linear_supported(input, weight, bias),
              "onednn_linear takes contiguous float32 CPU input [..., in] and weight [out, in] "
              "(and bias [out]) without autograd when LibTorch has oneDNN; got input ",
              input.sizes(), ", weight ", weight.sizes());
  const std::optional<at::Tensor> optional_bias =
      bias.defined() ? std::optional<at::Tensor>(bias) : std::nullopt;
  return linear_operator()->call(input, weight, optional_bias, "none",
                                 c10::List<std::optional<c10::Scalar>>(), std::nullopt);
}

}  // namespace stunt::kernels
