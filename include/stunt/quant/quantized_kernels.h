#pragma once
/// Running quantized layers compressed: each linear layer whose scheme a Stunt kernel takes
/// keeps its weights packed (int4 groups for W4A16, int8 channels for W8A8) and multiplies
/// with them directly, instead of holding decompressed float32 weights and fake-quantizing.
/// The packed form equals the checkpoint's integers and scales; only the order and precision of
/// the float32 sums differ from the reference path (kernels/int4_linear.h and
/// kernels/int8_linear.h say by how much).

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "stunt/model/hf_model.h"
#include "stunt/quant/quantization_plan.h"

namespace stunt::quant {

/// How the quantized layers of a loaded model run.
enum class KernelMode {
  /// Stunt's packed kernels wherever they take the layer; the reference elsewhere.
  Fast,
  /// Decompressed float32 weights and fake-quantized activations everywhere: the arithmetic
  /// compressed-tensors and vLLM's reference path describe, for checking the fast one.
  Reference,
};

/// "fast" or "reference" → KernelMode; ValueError naming `option` and both values otherwise.
KernelMode parse_kernel_mode(const std::string& text, const std::string& option);

/// What runs one quantized layer, and why.
struct LayerKernel {
  std::string layer;
  /// "int4-linear", "int8-linear", or "reference".
  std::string kernel;
  /// Why the reference runs it (empty when a packed kernel does).
  std::string why;
  /// Bytes of weight the layer holds: packed, or float32 for the reference.
  int64_t weight_bytes = 0;
};

/// Packs every linear layer of `model` that `plan` quantizes and a kernel takes, and makes the
/// layer call the kernel; the float32 weight is released (Layer::weight becomes a meta tensor
/// of the same shape, so that any later reader of the values fails loudly instead of reading
/// zeros). Layers no kernel takes keep the reference path. Returns one entry per quantized
/// layer, in the plan's order. Inference only: the packed kernels have no backward.
std::vector<LayerKernel> install_quantized_kernels(model::Model& model,
                                                   const QuantizationPlan& plan);

/// Makes every float32 linear layer of `model` without a kernel of its own run on a copy of its
/// weight packed by MKL (kernels/packed_float_linear.h), and releases the weight as
/// install_quantized_kernels does. Inference only. Returns the number of layers packed (0 when
/// this LibTorch has no packed GEMM).
int install_packed_float_kernels(model::Model& model);

/// load_model(path), then, in KernelMode::Fast, install_quantized_kernels and
/// install_packed_float_kernels. Logs one line that
/// counts the layers per kernel and the weight bytes held; with `explain`, one line per layer
/// saying which kernel runs it and why the others refused. `report`, when given, receives one
/// entry per quantized layer (all "reference" in KernelMode::Reference).
std::unique_ptr<model::HfModel> load_model_for_inference(
    const std::filesystem::path& path, KernelMode mode, bool explain = false,
    std::vector<LayerKernel>* report = nullptr);

}  // namespace stunt::quant
