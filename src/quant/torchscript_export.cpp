#include "stunt/quant/torchscript_export.h"

#include <ATen/ATen.h>

#include "stunt/core/atomic_file.h"
#include "stunt/io/safetensors.h"
#include "stunt/quant/compressed_tensors.h"

namespace stunt::quant {

namespace {

at::Tensor zero_point_buffer(const QParams& qparams, const QuantArgs& args) {
  const at::Tensor zp =
      qparams.zero_point.defined() ? qparams.zero_point : at::zeros_like(qparams.scale);
  return args.type == QuantType::Int ? zp.round().to(at::kChar) : zp.to(qparams.scale.dtype());
}

}  // namespace

void save_compressed_script(model::ScriptModel& model, const QuantizationPlan& plan,
                            const std::filesystem::path& folder) {
  // First: it refuses layers compressed-tensors cannot store before anything is written.
  const CompressedState state = compressed_state(model, plan);
  for (const auto& [name, record] : plan.layers()) {
    const QuantScheme& scheme = plan.scheme(record.group);
    if (scheme.weights && record.weight.scale.defined()) {
      model.set_layer_buffer(name, "weight_scale", record.weight.scale);
      model.set_layer_buffer(name, "weight_zero_point",
                             zero_point_buffer(record.weight, *scheme.weights));
    }
    if (scheme.input_activations && record.input.scale.defined()) {
      model.set_layer_buffer(name, "input_scale", record.input.scale);
      model.set_layer_buffer(name, "input_zero_point",
                             zero_point_buffer(record.input, *scheme.input_activations));
    }
  }
  std::filesystem::create_directories(folder);
  model.save_archive(folder / "model.pt");
  io::save_safetensors(folder / "model.safetensors", state.tensors,
                       {.metadata = {{"format", "pt"}}});
  write_file_atomic(folder / "quantization_config.json",
                    quantization_config(plan, state.unquantized).dump(2) + "\n");
}

}  // namespace stunt::quant
