#pragma once
/// The compressed-tensors checkpoint format (what vLLM and llm-compressor read and write):
/// writing a quantized model as a Hugging Face folder, and loading such folders back.

#include <nlohmann/json.hpp>

#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "stunt/model/hf_model.h"
#include "stunt/quant/quantization_plan.h"

namespace stunt::quant {

/// The format compressed-tensors 0.19 infers for a linear layer under `scheme` (the scheme's own
/// `format` wins): int-quantized (int weights, quantized inputs), pack-quantized (int weights of
/// 1-8 bits, inputs not quantized or int), float-quantized (fp8 weights, quantized inputs),
/// naive-quantized (anything else with weights).
std::string scheme_format(const QuantScheme& scheme);

/// Throws ValueError naming `layer` when `format` cannot store `weights`: Stunt packs 4- and
/// 8-bit integers only (the widths every compressed-tensors version lays out alike).
void check_packable(const QuantArgs& weights, const std::string& format, const std::string& layer);

/// The tensors one quantized layer is saved as, under `name` + ".weight_packed" and so on.
/// `weight` holds the dequantized values; scales are written in `scale_dtype`.
std::vector<std::pair<std::string, at::Tensor>> compress_layer(const std::string& name,
                                                               const at::Tensor& weight,
                                                               const LayerQuantization& record,
                                                               const QuantScheme& scheme,
                                                               c10::ScalarType scale_dtype);

/// config.json's `quantization_config` for `plan`, as compressed-tensors writes it. `ignore`
/// lists the linear layers left unquantized, by name (compressed-tensors writes the modules,
/// not the recipe's patterns).
nlohmann::ordered_json quantization_config(const QuantizationPlan& plan,
                                           const std::vector<std::string>& ignore);

struct CompressedState {
  /// The model's state dict with each quantized layer's weight replaced by its compressed
  /// tensors (weight_packed, weight_scale, ...), in state-dict order.
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  /// The Linear layers left unquantized, by name (quantization_config's `ignore`).
  std::vector<std::string> unquantized;
};

/// What `model` quantized as `plan` says is saved as. Throws NotImplementedError naming the
/// layer for quantized layers compressed-tensors cannot store (convolutions, GPT-2's Conv1D).
CompressedState compressed_state(const model::Model& model, const QuantizationPlan& plan);

/// Writes `model` quantized as `plan` says into `folder`: config.json with quantization_config,
/// safetensors with each quantized layer compressed, and the source's tokenizer files.
void save_compressed(const model::HfModel& model, const QuantizationPlan& plan,
                     const std::filesystem::path& folder);

/// Whether `path` is a Hugging Face folder whose config.json declares compressed-tensors.
bool is_compressed_tensors_folder(const std::filesystem::path& path);

/// Opens any model Stunt runs, compressed or not: the one loader for programs (also reachable
/// as stunt::load_model). A Hugging Face folder or GGUF file loads as model::load_dense_model
/// loads it; a compressed-tensors folder is decompressed (its
/// weights equal what compressed-tensors decompresses) and its layers quantize their input
/// activations as the checkpoint's schemes say, so the model computes what vLLM would; `plan`,
/// when given, receives the schemes and scales.
std::unique_ptr<model::HfModel> load_model(const std::filesystem::path& path,
                                           const model::LoadOptions& options = {},
                                           QuantizationPlan* plan = nullptr);

}  // namespace stunt::quant
