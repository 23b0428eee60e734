#pragma once
/// Quantized TorchScript models: the archive with dequantized weights and the quantization
/// parameters as buffers, and the same model as compressed-tensors safetensors.

#include <filesystem>

#include "stunt/model/script_model.h"
#include "stunt/quant/quantization_plan.h"

namespace stunt::quant {

/// Writes into `folder`:
/// - model.pt: the TorchScript module with each quantized layer's weight dequantized (what it
///   computes with) and buffers weight_scale and weight_zero_point, plus input_scale and
///   input_zero_point for static input activations; zero points are int8 (the scale's dtype
///   for float types), zero for symmetric schemes.
/// - model.safetensors: the module's parameters and buffers with the quantized layers
///   compressed as compressed-tensors stores them, and quantization_config.json: the
///   `quantization_config` that would go in a Hugging Face config.json.
/// Every file is written atomically.
void save_compressed_script(model::ScriptModel& model, const QuantizationPlan& plan,
                            const std::filesystem::path& folder);

}  // namespace stunt::quant
